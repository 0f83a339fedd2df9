#!/usr/bin/env bash
# Synthesises holdfast's default hold music, media/music/hold.flac, with sox alone.
#
# A 60-second loop at 64 bpm in C major: 16 bars of soft pad chords
#   | C Am F G | C Am F G | F G Em Am | Dm G C C |
# (I–vi–IV–V twice, then a turn through IV–V–iii–vi and ii–V–I home), each chord note made
# of detuned sine and triangle partials over a sine bass, with a bell-like eighth-note
# arpeggio on top, then reverb. The reverb tail that runs past 60 s is mixed back onto the
# start, so the file loops without a gap or a click. Mono, 16 kHz, peak -3 dBFS.
#
# Everything is generated from scratch here, so the result is free of any third-party rights.
# Usage: media/make-music.sh   (needs sox; writes next to this script)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/music/hold.flac"
rate=16000
bar=3.75          # seconds per bar: 4 beats at 64 bpm
eighth=0.46875    # bar / 8
bars=16
loop=60           # bars * bar

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
raw=(-r "$rate" -e floating-point -b 32)

# MIDI note number, optionally detuned by cents, to Hz.
hz() { awk -v n="$1" -v c="${2:-0}" 'BEGIN { printf "%.4f", 440 * 2 ^ ((n - 69 + c / 100) / 12) }'; }
calc() { awk "BEGIN { printf \"%.5f\", $1 }"; }

# Chords: bass note, then four voices chosen for smooth voice leading (MIDI numbers).
declare -A chord=(
  [C]="36 60 64 67 72"
  [Am]="45 57 60 64 69"
  [F]="41 57 60 65 69"
  [G]="43 59 62 67 71"
  [Em]="40 59 64 67 71"
  [Dm]="38 57 62 65 69"
)
progression=(C Am F G C Am F G F G Em Am Dm G C C)

# One pad chord, 2 bars long: 0.8 s swell, held through its bar, 1.5 s release into the
# next chord, silence after. Even and odd bars go to separate layers, so releases overlap.
pad() { # name, output file
  local notes=(${chord[$1]}) synth=() remix=() ch=0
  local bass="${notes[0]}"
  synth+=(sine "$(hz "$bass")" triangle "$(hz "$bass" 3)")
  remix+=(1v0.22 2v0.06)
  ch=2
  for n in "${notes[@]:1}"; do
    # Three partials per note, ±6 cents apart: the slow beating makes it a warm pad.
    synth+=(sine "$(hz "$n" -6)" sine "$(hz "$n" 6)" triangle "$(hz "$n")")
    remix+=("$((ch + 1))v0.10" "$((ch + 2))v0.10" "$((ch + 3))v0.05")
    ch=$((ch + 3))
  done
  local held total
  held=$(calc "$bar + 1.8")
  total=$(calc "2 * $bar")
  sox -n "${raw[@]}" -c "$ch" "$work/tmp.wav" synth "$held" "${synth[@]}"
  sox "$work/tmp.wav" "$2" remix "$(IFS=,; echo "${remix[*]}")" \
    tremolo 0.25 15 lowpass 2500 fade q 0.8 "$held" 1.5 pad 0 "$(calc "$total - $held")"
}

# One arpeggio note, 2 eighths long: quick attack, logarithmic decay like a soft bell.
note() { # midi, output file
  local f len
  f="$(hz "$1")"
  len=$(calc "2 * $eighth")
  sox -n "${raw[@]}" -c 3 "$work/tmp.wav" synth "$len" sine "$f" sine "$(calc "2 * $f")" sine "$(calc "3 * $f")"
  sox "$work/tmp.wav" "$2" remix 1v0.6,2v0.12,3v0.04 fade l 0.015 "$len" "$(calc "$len - 0.02")"
}

# Arpeggio patterns: indices into the chord's four upper voices, played an octave higher.
up=(0 1 2 3 2 1 2 1)
turn=(3 2 1 0 1 2 3 2)

even_pads=() odd_pads=("$work/rest_bar.wav") even_notes=() odd_notes=("$work/rest_eighth.wav")
sox -n "${raw[@]}" -c 1 "$work/rest_bar.wav" trim 0 "$bar"
sox -n "${raw[@]}" -c 1 "$work/rest_eighth.wav" trim 0 "$eighth"

for ((b = 0; b < bars; b++)); do
  name="${progression[$b]}"
  pad "$name" "$work/pad_$b.wav"
  if ((b % 2 == 0)); then even_pads+=("$work/pad_$b.wav"); else odd_pads+=("$work/pad_$b.wav"); fi
  notes=(${chord[$name]})
  if ((b < 8)); then pattern=("${up[@]}"); else pattern=("${turn[@]}"); fi
  for ((e = 0; e < 8; e++)); do
    midi=$((notes[1 + pattern[e]] + 12))
    # The last bar rests on the tonic so the loop lands before it starts again.
    if ((b == bars - 1 && e >= 4)); then midi=72; fi
    i=$((b * 8 + e))
    note "$midi" "$work/note_$i.wav"
    if ((e % 2 == 0)); then even_notes+=("$work/note_$i.wav"); else odd_notes+=("$work/note_$i.wav"); fi
  done
done

sox "${even_pads[@]}" "$work/pads_even.wav"
sox "${odd_pads[@]}" "$work/pads_odd.wav"
sox "${even_notes[@]}" "$work/notes_even.wav"
sox "${odd_notes[@]}" "$work/notes_odd.wav"

# Mix, add room, and keep what runs past the loop point for the wrap-around.
# Levels stay well below full scale until the final normalisation (sox clips at ±1).
sox -m -v 0.5 "$work/pads_even.wav" -v 0.5 "$work/pads_odd.wav" \
  -v 0.3 "$work/notes_even.wav" -v 0.3 "$work/notes_odd.wav" \
  "$work/dry.wav" highpass 60 pad 0 4
sox "$work/dry.wav" "$work/wet.wav" reverb 40 50 70 100 15 -3
sox "$work/wet.wav" "$work/main.wav" trim 0 "$loop"
sox "$work/wet.wav" "$work/tail.wav" trim "$loop"
sox -m -v 0.7 "$work/main.wav" -v 0.7 "$work/tail.wav" "$work/looped.wav"

mkdir -p "$(dirname "$out")"
sox "$work/looped.wav" -r "$rate" -c 1 -b 16 "$out" gain -n -3 dither -s
echo "wrote $out"
sox --i "$out" | grep -E 'Duration|Sample Rate|File Size'
