#!/bin/sh
# A workspace check script: counts Python files and TODO markers under the directory given.
set -eu
dir=${1:-.}
files=$(find "$dir" -name '*.py' -type f | wc -l)
todos=$(grep -rn 'TODO' "$dir" --include='*.py' | wc -l)
echo "python files: $files"
echo "TODO markers: $todos"
