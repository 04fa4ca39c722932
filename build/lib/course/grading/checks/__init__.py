"""The checks of each assignment, run by the judge only (never in the learner's kernel).

A checks module declares what the notebook's kernel must save -- ``NAMES`` (answers),
``make_inputs(seed)`` (inputs for the learner's functions, ``{function: {case: frame}}``),
optionally ``SEARCHES`` (fitted scikit-learn searches) and ``TRUSTED`` (more
repository files the judge relies on, hashed like the grader's own) -- and one function
per criterion, ``check(answers, **context) -> (passed, message)``, that compares the
saved answers (:class:`course.grading.judge.Answers`) with values it computes itself.
"""
