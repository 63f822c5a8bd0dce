#!/usr/bin/env bash
# Unpack the public real-speech corpora the reports use into DEST (default ./real-speech).
#
#   bash scripts/get_real_speech.sh [--dest DEST] [SOURCE ...]
#
# SOURCE is one of: minilibri speechocean ravdess tess savee emodb accent bgnoise librosa (default: all).
# bgnoise and librosa are real recordings WITHOUT speech (background noise, household sounds, music,
# animals), sorted into one folder per kind for `whisper-sae corpus cut`.
# Each source is a public GitHub repository pinned to a commit. A bare git directory is looked for
# in $WHISPER_SAE_MIRRORS/OWNER+NAME/repo (where a sandbox keeps fetched snapshots); otherwise the
# repository is cloned bare from GitHub into DEST/.git-cache. The audio never goes into this
# project's repository: several corpora are licensed for research use only (see each report).
set -euo pipefail

dest=real-speech
sources=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dest) dest=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) sources+=("$1"); shift ;;
  esac
done
[[ ${#sources[@]} -gt 0 ]] || sources=(minilibri speechocean ravdess tess savee emodb accent bgnoise librosa)
mirrors=${WHISPER_SAE_MIRRORS:-/work/.mirror}
mkdir -p "$dest"

# name -> "owner/repo commit path [path ...]"
declare -A SPEC=(
  [minilibri]="zhangrui0712/Voice-Age c13f844 LibriSpeech"
  [speechocean]="jimbozhang/speechocean762 613968e WAVE train test resource/scores.json resource/text-phone"
  [ravdess]="akisaini/DL-Project 93d4aa55b2ce ravdess"
  [tess]="NidupDorji/SpeechEmotionRecognitionSystemUsingPython 4f35f4bb7115 TESS_Toronto_emotional_speech_set_data"
  [savee]="Set0ri/Emotional-Speech-Recognition 33428a84fdce AudioData"
  [emodb]="sylaschacko/voice-emotion-analysis 4b0f64c947b8 wav audio_labels.csv"
  # Speech Accent Archive (CC BY-NC-SA 2.0: research only; never ship SAEs trained on it). MP3s at the top level.
  [accent]="gabillogical/whisper_project 74f7269 ."
  # Speech Commands' _background_noise_ (CC BY 4.0): 6 recordings of about a minute each.
  [bgnoise]="chaeyoung-lee/wids_tutorial 7d028e7211c8 data/_background_noise_"
  # librosa's example audio (per-file licences in the .txt beside each; CC BY / BY-NC / public domain).
  [librosa]="librosa/data 450cdd8a002c audio"
)

gitdir_for() {
  local repo=$1 local_dir="$mirrors/${1/\//+}/repo"
  if [[ -d "$local_dir" ]]; then
    echo "$local_dir"
    return
  fi
  local cache="$dest/.git-cache/${repo/\//+}"
  [[ -d "$cache" ]] || git clone --quiet --bare "https://github.com/$repo" "$cache" >&2
  echo "$cache"
}

# Write the blobs of PATH at COMMIT one by one: some snapshots miss files `git archive` trips on.
unpack() {
  local gitdir=$1 commit=$2 out=$3 path=$4
  git --git-dir="$gitdir" ls-tree -r "$commit" -- "$path" | while read -r _mode type hash file; do
    [[ $type == blob ]] || continue
    mkdir -p "$out/$(dirname "$file")"
    git --git-dir="$gitdir" cat-file blob "$hash" > "$out/$file" 2>/dev/null || {
      echo "missing in the snapshot, skipped: $file" >&2
      rm -f "$out/$file"
    }
  done
}

for name in "${sources[@]}"; do
  [[ -n "${SPEC[$name]:-}" ]] || { echo "unknown source: $name (one of: ${!SPEC[*]})" >&2; exit 2; }
  read -r repo commit paths <<<"${SPEC[$name]}"
  gitdir=$(gitdir_for "$repo")
  full=$(git --git-dir="$gitdir" rev-parse "$commit^{commit}")
  echo "$name: $repo @ ${full:0:12} -> $dest/$name"
  for p in $paths; do unpack "$gitdir" "$full" "$dest/$name" "$p"; done
done
# TESS holds two foreign 44.1 kHz files (REAL-SPEECH.md); drop them.
rm -f "$dest"/tess/TESS_Toronto_emotional_speech_set_data/OAF_angry/OAF_back_angry.wav \
  "$dest"/tess/TESS_Toronto_emotional_speech_set_data/YAF_sad/YAF_beg_sad.wav 2>/dev/null || true
# Non-speech sources: one folder per kind. librosa's LibriSpeech readings and its song with vocals
# (Karissa Hobbs) are speech, and the .hq.ogg files duplicate the others: all removed.
if [[ -d "$dest/bgnoise/data/_background_noise_" ]]; then
  b="$dest/bgnoise"
  mkdir -p "$b/noise" "$b/household"
  mv -f "$b"/data/_background_noise_/{white,pink}_noise.wav "$b/noise/" 2>/dev/null || true
  mv -f "$b"/data/_background_noise_/*.wav "$b/household/" 2>/dev/null || true
  rm -rf "$b/data"
fi
if [[ -d "$dest/librosa/audio" ]]; then
  l="$dest/librosa"
  rm -f "$l"/audio/*.hq.ogg "$l"/audio/[0-9]*-[0-9]*-0000.* "$l"/audio/Karissa_Hobbs*
  mkdir -p "$l/animals" "$l/music"
  for f in "$l"/audio/*bird-whistling* "$l"/audio/glacier-bay-humpback.* "$l"/audio/pibble.*; do
    [[ -e "$f" ]] && mv -f "$f" "$l/animals/"
  done
  mv -f "$l"/audio/* "$l/music/" 2>/dev/null || true
  rmdir "$l/audio"
fi
du -sh "$dest"/* 2>/dev/null
