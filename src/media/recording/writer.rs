//! The writer thread: turns batches into files (see the parent module).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;

use super::assemble::{Assembler, Sink};
use super::{Message, packets, wav};

/// Frames of zeros written at once for a long silence.
const SILENCE_CHUNK: u64 = 8_000;

/// One open recording.
struct Open {
    file: File,
    path: PathBuf,
    assembler: Assembler,
    /// Frames in the file before this recording began (a call kept through a restart).
    before: u64,
    /// The first write error (later ones are not logged again).
    failed: bool,
}

/// Writes the frames handed on to the end of the file.
struct FileSink<'a> {
    file: &'a File,
    /// Frames in the file.
    frames: u64,
    error: Option<io::Error>,
    bytes: Vec<u8>,
}

impl FileSink<'_> {
    fn write(&mut self, bytes: &[u8], frames: u64) {
        if self.error.is_some() {
            return;
        }
        let at = wav::HEADER_LEN + self.frames * wav::FRAME_BYTES;
        match self.file.write_all_at(bytes, at) {
            Ok(()) => self.frames += frames,
            Err(error) => self.error = Some(error),
        }
    }
}

impl Sink for FileSink<'_> {
    fn frames(&mut self, interleaved: &[i16]) {
        let mut bytes = std::mem::take(&mut self.bytes);
        bytes.clear();
        wav::samples_le(interleaved, &mut bytes);
        self.write(&bytes, interleaved.len() as u64 / 2);
        self.bytes = bytes;
    }

    fn silence(&mut self, mut frames: u64) {
        let zeros = vec![0u8; (SILENCE_CHUNK * wav::FRAME_BYTES) as usize];
        while frames > 0 {
            let n = frames.min(SILENCE_CHUNK);
            self.write(&zeros[..(n * wav::FRAME_BYTES) as usize], n);
            frames -= n;
        }
    }
}

impl Open {
    /// Runs `f` on the assembler with the file as its sink, then states the new length in
    /// the header.
    fn append(&mut self, f: impl FnOnce(&mut Assembler, &mut FileSink<'_>)) {
        let mut sink = FileSink {
            file: &self.file,
            frames: self.before + self.assembler.handed_on(),
            error: None,
            bytes: Vec::new(),
        };
        f(&mut self.assembler, &mut sink);
        let frames = sink.frames;
        let error = sink
            .error
            .or_else(|| self.file.write_all_at(&wav::header(frames), 0).err());
        if let Some(error) = error
            && !std::mem::replace(&mut self.failed, true)
        {
            tracing::error!(path = %self.path.display(), %error, "cannot write a recording; its audio is lost from here");
        }
    }
}

/// Runs until every sender is gone: the engine has shut down and each shard has ended its
/// recordings.
pub(crate) fn run(messages: Receiver<Message>) {
    let mut open: HashMap<u64, Open> = HashMap::new();
    for message in messages {
        match message {
            Message::Start { key, path } => match start(&path) {
                Ok((file, path, before)) => {
                    tracing::info!(path = %path.display(), continued = before > 0, "recording");
                    open.insert(
                        key,
                        Open {
                            file,
                            path,
                            assembler: Assembler::new(),
                            before,
                            failed: false,
                        },
                    );
                }
                Err(error) => {
                    tracing::error!(path = %path.display(), %error, "cannot start a recording; this call is not recorded");
                }
            },
            Message::Audio { key, batch } => {
                if let Some(rec) = open.get_mut(&key) {
                    rec.append(|assembler, sink| {
                        for p in packets(&batch) {
                            assembler.push(p.side, p.at_us, p.ts, p.law, p.payload, sink);
                        }
                        assembler.settle(sink);
                    });
                }
            }
            Message::End { key } => {
                if let Some(mut rec) = open.remove(&key) {
                    rec.append(|assembler, sink| assembler.finish(sink));
                    let frames = rec.before + rec.assembler.handed_on();
                    tracing::info!(
                        path = %rec.path.display(),
                        seconds = frames / u64::from(wav::RATE),
                        "recording finished"
                    );
                }
            }
        }
    }
    for (_, mut rec) in open {
        rec.append(|assembler, sink| assembler.finish(sink));
    }
}

/// Opens the file of a recording: a new one with an empty header, or one of ours left by
/// an earlier process, continued after the frames its header states. A file of ours that
/// is unreadable, or someone else's, is kept: the recording goes to `<name>-<n>.wav`.
fn start(path: &Path) -> io::Result<(File, PathBuf, u64)> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut candidate = path.to_path_buf();
    for n in 1..100 {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&candidate)
        {
            Ok(file) => {
                file.write_all_at(&wav::header(0), 0)?;
                return Ok((file, candidate, 0));
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                let file = OpenOptions::new().read(true).write(true).open(&candidate)?;
                if let Some(frames) = wav::frames_of(&file) {
                    return Ok((file, candidate, frames));
                }
                let stem = path.file_stem().unwrap_or_default().to_string_lossy();
                candidate = path.with_file_name(format!("{stem}-{n}.wav"));
            }
            Err(error) => return Err(error),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "a hundred files of that name exist",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::recording::{Law, Recorder, Side, Tap};
    use std::time::{Duration, Instant};

    #[test]
    fn a_recording_is_a_wav_that_continues_after_a_restart() {
        let dir = std::env::temp_dir().join(format!("holdfast-rec-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("2026-12-02").join("abc@host.wav");
        for round in 0..2 {
            let (recorder, rx) = Recorder::new();
            let writer = std::thread::spawn(move || run(rx));
            assert!(recorder.send(Message::Start {
                key: 1,
                path: path.clone()
            }));
            let t0 = Instant::now();
            let mut tap = Tap::new(t0);
            for k in 0..100u32 {
                let at = t0 + Duration::from_millis(u64::from(k + 1) * 20);
                for side in [Side::Caller, Side::Agent] {
                    if let Some(batch) = tap.packet(side, Law::Mu, at, k * 160, &[0x10; 160]) {
                        assert!(recorder.send(Message::Audio { key: 1, batch }));
                    }
                }
            }
            let batch = tap.take();
            assert!(recorder.send(Message::Audio { key: 1, batch }));
            assert!(recorder.send(Message::End { key: 1 }));
            drop(recorder);
            writer.join().unwrap();
            let bytes = std::fs::read(&path).unwrap();
            let frames = wav::frames_in(&bytes).unwrap();
            assert_eq!(frames, 16_000 * (round + 1), "round {round}");
            assert_eq!(bytes.len() as u64, wav::HEADER_LEN + frames * 4);
        }
        // Someone else's file of that name is kept; ours goes beside it.
        let other = dir.join("x.wav");
        std::fs::write(&other, b"not a wav").unwrap();
        let (_, path, before) = start(&other).unwrap();
        assert_eq!((path, before), (dir.join("x-1.wav"), 0));
        assert_eq!(std::fs::read(&other).unwrap(), b"not a wav");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
