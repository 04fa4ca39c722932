"""Validate an untrusted grade artifact and write the pull-request comment (comment.yml).

Runs with the standard library only: it loads 05_src/course/grading/artifact.py by path,
without importing the package (whose dependencies are not installed in the comment
workflow), and checks the results against main's rubrics (NN_topic_rubric.md).

    python scripts/validate_grade_artifact.py pr-number ARTIFACT_DIR
    python scripts/validate_grade_artifact.py comment ARTIFACT_DIR --pull PULL.json \
        --files FILES.txt --rubrics 02_activities/assignments --head-sha SHA \
        [--head-repo OWNER/NAME] --output COMMENT.json
"""

import importlib.util
import sys
from pathlib import Path

ARTIFACT = Path(__file__).resolve().parents[1] / "05_src" / "course" / "grading" / "artifact.py"


def load_artifact():
    # no bytecode beside the grader's sources, whatever the flags (-I ignores the environment)
    sys.dont_write_bytecode = True
    spec = importlib.util.spec_from_file_location("_grading_artifact", ARTIFACT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    sys.exit(load_artifact().validate_artifact_main(sys.argv[1:]))
