#!/usr/bin/env bash
# Renders holdfast's English prompt pack, media/prompts/en/, with espeak-ng and sox.
#
# One clip per phrase or word: the sentences callers hear while they hold (docs/behaviour.md §4), the
# number words that compose 1–999, and the digits used to read back a callback number.
# Each clip is synthesised by espeak-ng (voice en-us), converted by sox to 8 kHz mono 16-bit
# FLAC (the G.711 rate, so the server never resamples them), trimmed of leading and trailing
# silence, faded over 5 ms at both ends so clips join without a click, normalised to -3 dBFS
# and padded with 20 ms of silence. The pauses between clips are added by the server when it
# composes an announcement, so they are the same whatever voice recorded the clips.
#
# manifest.tsv lists every clip (file name, then the words it says). To use your own voice,
# record the same words and save them under the same name (any format holdfast decodes:
# WAV, FLAC, Ogg/Vorbis, MP3); clips you do not replace keep the built-in voice.
#
# Usage: media/make-prompts.sh   (needs espeak-ng and sox; writes next to this script)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/prompts/en"
voice="${VOICE:-en-us}"
speed="${SPEED:-150}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# name|text — the name is the clip's file stem, which the server looks clips up by.
clips=(
  "you-are-currently-number|You are currently number"
  "in-the-queue|in the queue."
  "you-are-next-in-the-queue|You are next in the queue."
  "there-are-at-least|There are at least"
  "callers-ahead-of-you|callers ahead of you."
  "estimated-wait-time-is|Estimated wait time is"
  "less-than-a-minute|less than a minute."
  "about|about"
  "minute|minute."
  "minutes|minutes."
  "5-to-10-minutes|5 to 10 minutes."
  "more-than-10-minutes|more than 10 minutes."
  "all-agents-busy|All of our agents are busy."
  "please-hold|Please hold."
  "callback-offer|Would you like us to call you back when an agent is available? You will not lose your place in line. Press 1 for a callback."
  "callback-confirm|We will call you back at"
  "goodbye|Goodbye."
  "closed|We are closed right now. Please call again during our opening hours."
  "agent-paused|You are paused. No calls will be offered to you."
  "agent-available|You are available. Calls will be offered to you again."
  "hundred|hundred"
  "and|and"
)
ones=(zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen
  fifteen sixteen seventeen eighteen nineteen)
tens=(twenty thirty forty fifty sixty seventy eighty ninety)
for word in "${ones[@]:1}" "${tens[@]}"; do
  clips+=("$word|$word")
done
for digit in 0 1 2 3 4 5 6 7 8 9; do
  clips+=("digit-$digit|${ones[$digit]}")
done

rm -rf "$out"
mkdir -p "$out"
manifest="$out/manifest.tsv"
printf 'file\ttext\n' >"$manifest"
for clip in "${clips[@]}"; do
  name="${clip%%|*}"
  text="${clip#*|}"
  espeak-ng -v "$voice" -s "$speed" -w "$work/raw.wav" "$text"
  # silence: drop everything before the first 10 ms above 0.3 % of full scale; doing it
  # again on the reversed audio trims the tail the same way.
  sox "$work/raw.wav" -r 8000 -c 1 -b 16 "$out/$name.flac" \
    silence 1 0.01 0.3% fade t 0.005 reverse \
    silence 1 0.01 0.3% fade t 0.005 reverse \
    gain -n -3 pad 0.02 0.02
  printf '%s\t%s\n' "$name.flac" "$text" >>"$manifest"
done

echo "wrote ${#clips[@]} clips to $out"
du -sh "$out"
