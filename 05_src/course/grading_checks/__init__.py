"""Checks of the assignments' rubrics, one module per assignment topic.

A rubric criterion names its check by dotted path, e.g.
``course.grading_checks.training_data.split_train_is_leak_free``; each check takes a
:class:`course.grading.Answers` and returns ``(passed, message)``
(see ``02_activities/GRADING.md``).
"""
