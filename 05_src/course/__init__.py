"""Course tooling, apart from what learners import.

The grader and its checks, the demo, the ``production`` command line, the scoring service
app and the quiz bank. Learners import :mod:`production`; nothing here is needed to follow
a lab.
"""
