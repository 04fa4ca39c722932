"""Course tooling, apart from what learners import: the grader and its checks, the demo,
the ``production`` command line and the scoring service app.

Learners import :mod:`production`; nothing here is needed to follow a lab.
"""
