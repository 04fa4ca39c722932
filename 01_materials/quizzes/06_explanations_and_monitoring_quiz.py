# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Quiz 6 · Explanations and monitoring
#
# A self-check on session 6: lab `06_explanations_and_monitoring`, slides `06_explanations_and_monitoring.md` and chapters
# 7–8 of Chip Huyen's *Designing Machine Learning Systems*. About 10 minutes.
#
# Nothing here is recorded or graded: the graded quiz of the session (same kind of questions)
# is on the course's learning platform. Each answer shows whether it is right and why.

# %% [markdown]
# ## 1. Take the quiz
#
# Run the cell below, then click your answers. A question marked "select all that apply" has
# several right choices.

# %%
from jupyterquiz import display_quiz

from course.quizzes import quiz_questions

questions = quiz_questions(6)
print(f"{len(questions)} questions")
display_quiz(questions)

# %% [markdown]
# ## 2. Review
#
# Missed one? Reread the section of the lab named in the explanation, then run the quiz
# again: the choices are shuffled each time.
