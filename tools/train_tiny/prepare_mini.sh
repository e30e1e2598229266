#!/usr/bin/env bash
# Prepares the training data of the embedded mini model (4,096-token
# context) in DIR (default .train-mini/, which git ignores), everything
# gzipped so that the folder travels to a GPU machine with the repository:
#   - train.txt.gz: natural English, one verse or paragraph a line — the King
#     James Bible less the held-out books (as prepare.sh writes it), then
#     Ambrose Bierce's The Devil's Dictionary (dict-devil, public domain),
#     the Jargon File 4.4.7 (dict-jargon, public domain) and, unless
#     WORDNET=0, the WordNet 3.0 glosses (wordnet-base, WordNet licence);
#   - heldout.txt.gz: Ruth, Jonah, Philemon and Revelation, byte for byte
#     prepare.sh's heldout.txt (embedded as embedded:kjv-heldout);
#   - passkey.jsonl.gz: passkey documents written by kvcascade itself, filler
#     lengths 16 to 1,600 words (up to about 4,000 tokens);
#   - words: the filler word list.
#
# Usage: tools/train_tiny/prepare_mini.sh [DIR] [N_PASSKEY_DOCS]   (run from the repository root)
set -euo pipefail
dir=${1:-.train-mini}
ndocs=${2:-3500}
here=$(dirname "$0")
mkdir -p "$dir"

pkgs="bible-kjv dict-devil dict-jargon"
[ "${WORDNET:-1}" = 0 ] || pkgs="$pkgs wordnet-base"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

# The Bible split exactly as for the tiny model; no passkey documents there.
"$here/prepare.sh" "$dir" 0 >/dev/null
{
  cat "$dir/train.txt"
  python3 "$here/dict2text.py" dictd /usr/share/dictd/devil.dict.dz /usr/share/dictd/devil.index
  python3 "$here/dict2text.py" dictd /usr/share/dictd/jargon.dict.dz /usr/share/dictd/jargon.index
  if [ "${WORDNET:-1}" != 0 ]; then python3 "$here/dict2text.py" wordnet /usr/share/wordnet; fi
} | gzip -9 > "$dir/train.txt.gz"
gzip -9 -n -c "$dir/heldout.txt" > "$dir/heldout.txt.gz"
rm "$dir/train.txt" "$dir/heldout.txt"

go run ./cmd/kvcascade passkey-docs --n "$ndocs" --min-words 16 --max-words 1600 --seed 1 | gzip -9 > "$dir/passkey.jsonl.gz"
ls -l "$dir"
du -sh "$dir"
