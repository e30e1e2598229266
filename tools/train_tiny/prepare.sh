#!/usr/bin/env bash
# Prepares the training data of the embedded tiny model in DIR (default
# .train/, which git ignores): natural public-domain English from Debian's
# bible-kjv package, split by book into training and held-out text, the
# filler word list kvcascade embeds, and passkey documents written by kvcascade itself in
# exactly the layout the passkey experiment evaluates.
#
# Usage: tools/train_tiny/prepare.sh [DIR] [N_PASSKEY_DOCS]   (run from the repository root;
# N_PASSKEY_DOCS = 0 writes no passkey documents, as prepare_mini.sh asks)
set -euo pipefail
dir=${1:-.train}
ndocs=${2:-20000}
mkdir -p "$dir"

if ! command -v bible >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bible-kjv >/dev/null
fi

# The whole text, chapter by chapter; drop chapter headings and verse
# numbers and join the wrapped lines of each verse.
bible gen1:1-rev22:21 | awk '
  /^[A-Z0-9][A-Za-z ]* [0-9]+$/ { book = $0; sub(/ [0-9]+$/, "", book); next }
  /^$/ { next }
  /^  *[0-9]+ / { if (verse != "") print cur "\t" verse; sub(/^  *[0-9]+ /, ""); verse = $0; cur = book; next }
  { verse = verse " " $0 }
  END { if (verse != "") print cur "\t" verse }
' > "$dir/kjv.tsv"

# Held out (never trained on): Ruth, Jonah, Philemon and Revelation.
awk -F'\t' '$1 ~ /^(Ruth|Jonah|Philemon|Revelation)$/ { print $2 }' "$dir/kjv.tsv" > "$dir/heldout.txt"
awk -F'\t' '$1 !~ /^(Ruth|Jonah|Philemon|Revelation)$/ { print $2 }' "$dir/kjv.tsv" > "$dir/train.txt"
rm "$dir/kjv.tsv"

cp datasets/passkey/words/words.txt "$dir/words"
if [ "$ndocs" -gt 0 ]; then
  go run ./cmd/kvcascade passkey-docs --n "$ndocs" --min-words 8 --max-words 400 --seed 1 | gzip -6 > "$dir/passkey.jsonl.gz"
fi
wc -c "$dir"/*
