#!/usr/bin/env bash
# Renders one of holdfast's prompt packs, media/prompts/<lang>/, with espeak-ng and sox.
#
# Three packs: en (English, espeak-ng voice en-us; the pack built into the server), es (Spanish,
# voice es) and de (German, voice de). Each has one clip per phrase or word: the sentences
# callers hear while they hold (docs/behaviour.md §4), the number words that compose 1–999 in
# that language, and the digits used to read back a callback number. The English, Spanish and
# German clips have different names, because the sentences are cut at different places and the
# numbers are built differently (English "twenty" + "one", Spanish "treinta" + "y" + "uno" and
# "veintiuno" as one word, German "einundzwanzig" as one word for every number up to 99).
# Each clip is synthesised by espeak-ng at 150 words per minute, converted by sox to 8 kHz
# mono 16-bit FLAC (the G.711 rate, so the server never resamples them), trimmed of leading and
# trailing silence, faded over 5 ms at both ends so clips join without a click, normalised to
# -3 dBFS and padded with 20 ms of silence. The pauses between clips are added by the server
# when it composes an announcement, so they are the same whatever voice recorded the clips.
#
# manifest.tsv lists every clip of a pack (file name, then the words it says). To use your own
# voice, record the same words and save them under the same name (any format holdfast decodes:
# WAV, FLAC, Ogg/Vorbis, MP3); clips you do not replace keep the built-in voice.
#
# Usage: media/make-prompts.sh [en|es|de]   (default en; needs espeak-ng and sox; writes next to
# this script, replacing that language's pack). VOICE and SPEED override the espeak-ng voice and
# speed, e.g. VOICE=en-gb media/make-prompts.sh en.
set -euo pipefail

lang="${1:-en}"
case "$lang" in
  en) default_voice=en-us ;;
  es) default_voice=es ;;
  de) default_voice=de ;;
  *)
    echo "usage: $0 [en|es|de]" >&2
    exit 2
    ;;
esac

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/prompts/$lang"
voice="${VOICE:-$default_voice}"
speed="${SPEED:-150}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# name|text — the name is the clip's file stem, which the server looks clips up by.
clips_en() {
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
}

clips_es() {
  clips=(
    "usted-es-el-numero|Usted es el número"
    "en-la-cola|en la cola."
    "usted-es-el-siguiente|Usted es el siguiente en la cola."
    "hay-al-menos|Hay al menos"
    "personas-delante-de-usted|personas delante de usted."
    "el-tiempo-de-espera-estimado-es|El tiempo de espera estimado es"
    "menos-de-un-minuto|de menos de un minuto."
    "de-aproximadamente|de aproximadamente"
    "minuto|minuto."
    "minutos|minutos."
    "de-5-a-10-minutos|de cinco a diez minutos."
    "mas-de-10-minutos|de más de diez minutos."
    "all-agents-busy|Todos nuestros agentes están ocupados."
    "please-hold|Por favor, espere."
    "callback-offer|¿Quiere que le llamemos cuando haya un agente disponible? No perderá su lugar en la cola. Pulse 1 para que le llamemos."
    "callback-confirm|Le llamaremos al"
    "goodbye|Adiós."
    "closed|Ahora estamos cerrados. Por favor, llame durante nuestro horario de atención."
    "agent-paused|Está en pausa. No recibirá llamadas."
    "agent-available|Está disponible. Volverá a recibir llamadas."
    "y|y"
    "un|un"
    "veintiun|veintiún"
    "ciento|ciento"
  )
  # 1–29 are single words; from 30 a number is "treinta" + "y" + "uno".
  local ones=(cero uno dos tres cuatro cinco seis siete ocho nueve diez once doce trece catorce
    quince dieciséis diecisiete dieciocho diecinueve veinte veintiuno veintidós veintitrés
    veinticuatro veinticinco veintiséis veintisiete veintiocho veintinueve)
  local tens=(treinta cuarenta cincuenta sesenta setenta ochenta noventa)
  local hundreds=(cien doscientos trescientos cuatrocientos quinientos seiscientos setecientos
    ochocientos novecientos)
  local n
  for n in $(seq 1 29); do
    clips+=("num-$n|${ones[$n]}")
  done
  for n in 3 4 5 6 7 8 9; do
    clips+=("num-${n}0|${tens[$((n - 3))]}")
  done
  for n in 1 2 3 4 5 6 7 8 9; do
    clips+=("num-${n}00|${hundreds[$((n - 1))]}")
  done
  for n in 0 1 2 3 4 5 6 7 8 9; do
    clips+=("digit-$n|${ones[$n]}")
  done
}

clips_de() {
  clips=(
    "sie-sind-nummer|Sie sind Nummer"
    "in-der-warteschlange|in der Warteschlange."
    "sie-sind-als-naechstes-dran|Sie sind als Nächstes an der Reihe."
    "vor-ihnen-warten-mindestens|Vor Ihnen warten mindestens"
    "anrufer|Anrufer."
    "die-geschaetzte-wartezeit-betraegt|Die geschätzte Wartezeit beträgt"
    "weniger-als-eine-minute|weniger als eine Minute."
    "etwa|etwa"
    "minute|Minute."
    "minuten|Minuten."
    "5-bis-10-minuten|fünf bis zehn Minuten."
    "mehr-als-10-minuten|mehr als zehn Minuten."
    "all-agents-busy|Alle unsere Mitarbeiter sind im Gespräch."
    "please-hold|Bitte bleiben Sie dran."
    "callback-offer|Möchten Sie zurückgerufen werden, sobald ein Mitarbeiter frei ist? Sie verlieren Ihren Platz in der Warteschlange nicht. Drücken Sie die 1 für einen Rückruf."
    "callback-confirm|Wir rufen Sie zurück unter"
    "goodbye|Auf Wiederhören."
    "closed|Wir haben im Moment geschlossen. Bitte rufen Sie während unserer Öffnungszeiten wieder an."
    "agent-paused|Sie sind pausiert. Es werden Ihnen keine Anrufe angeboten."
    "agent-available|Sie sind verfügbar. Es werden Ihnen wieder Anrufe angeboten."
    "eine|eine"
  )
  # Every number up to 99 is one word: 1–19 as they are, then unit + "und" + tens
  # ("einundzwanzig", "sechsundsechzig"); the hundreds are unit + "hundert".
  local ones=(null eins zwei drei vier fünf sechs sieben acht neun zehn elf zwölf dreizehn
    vierzehn fünfzehn sechzehn siebzehn achtzehn neunzehn)
  local units=("" ein zwei drei vier fünf sechs sieben acht neun)
  local tens=("" "" zwanzig dreißig vierzig fünfzig sechzig siebzig achtzig neunzig)
  local n
  for n in $(seq 1 99); do
    if ((n < 20)); then
      clips+=("num-$n|${ones[$n]}")
    elif ((n % 10 == 0)); then
      clips+=("num-$n|${tens[$((n / 10))]}")
    else
      clips+=("num-$n|${units[$((n % 10))]}und${tens[$((n / 10))]}")
    fi
  done
  for n in 1 2 3 4 5 6 7 8 9; do
    clips+=("num-${n}00|${units[$n]}hundert")
  done
  for n in 0 1 2 3 4 5 6 7 8 9; do
    clips+=("digit-$n|${ones[$n]}")
  done
}

"clips_$lang"

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
