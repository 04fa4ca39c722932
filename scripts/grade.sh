#!/usr/bin/env bash
# Grade assignment notebooks on this machine, as the grade workflow does on a pull request.
#
#   bash scripts/grade.sh 02_activities/assignments/01_training_data_activity.ipynb
#   bash scripts/grade.sh --out /tmp/grades --timeout 900 NOTEBOOK...
#
# For each NN_topic_activity.ipynb, writes OUT/NN_topic/grade.json (for machines),
# grade.md (for learners) and executed.ipynb (with outputs); OUT defaults to grades/ at the
# repository root. The rubric is NN_topic_rubric.yml next to the notebook. The grader's
# own files must match git (commit or restore them): a difference withholds the score;
# --no-git-check skips that comparison (only while developing the grader).
# Exit code: 0 when every notebook was graded, whatever its score; 2 when grading itself
# failed for one of them (a broken rubric or check: its grade.md says which).
# Environment: GRADE_COMMIT=<sha> records the commit graded; GRADE_PYTHON=<python> skips
# scripts/setup.sh and uses that interpreter (for tests, or an environment you manage).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
out="$root/grades"
timeout=600
extra=()
notebooks=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=${2:?--out needs a folder}; shift 2 ;;
    --timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
    --no-git-check) extra+=(--no-git-check); shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; notebooks+=("$@"); break ;;
    -*) echo "grade: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) notebooks+=("$1"); shift ;;
  esac
done
if [ ${#notebooks[@]} -eq 0 ]; then usage >&2; exit 2; fi

# Absolute paths first: setup.sh changes directory.
absolute() { if [ -d "$(dirname "$1")" ]; then echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; else echo "$1"; fi; }
mkdir -p "$out"
out=$(cd "$out" && pwd)
paths=()
for notebook in "${notebooks[@]}"; do paths+=("$(absolute "$notebook")"); done

if [ -n "${GRADE_PYTHON:-}" ]; then
  python=("$GRADE_PYTHON")
else
  source "$root/scripts/setup.sh"
  python=("${UV[@]}" run --frozen --no-sync python)
fi

# The grader writes no bytecode, and a .pyc planted beside its sources is never read.
find "$root/05_src/course/grading" "$root/05_src/production" -name __pycache__ -prune \
  -exec rm -rf {} + 2>/dev/null || true
export PYTHONDONTWRITEBYTECODE=1

status=0
for notebook in "${paths[@]}"; do
  name=$(basename "$notebook" .ipynb)
  name=${name%_activity}
  dir="$out/$name"
  rm -rf "$dir"
  mkdir -p "$dir"
  args=(-m course.grading "$notebook" --timeout "$timeout" --watch "$out" "${extra[@]}"
        --json "$dir/grade.json" --markdown "$dir/grade.md" --executed "$dir/executed.ipynb")
  if [ -n "${GRADE_COMMIT:-}" ]; then args+=(--commit "$GRADE_COMMIT"); fi
  "${python[@]}" "${args[@]}" || status=$?
  echo "grade: $dir/grade.md"
done
exit "$status"
