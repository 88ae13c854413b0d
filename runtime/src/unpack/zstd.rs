//! A zstd layer as a tar stream: every frame in order, skippable frames skipped, as `zstd -d` reads a file of
//! several. The decoder is pure Rust (`ruzstd`), with its window bounded by the format's maximum; what the frames
//! decompress to is bounded by the caller, and both digests are checked by the caller, so the frames' own
//! checksums add nothing.

use std::io::{self, BufRead, Read};

use ruzstd::decoding::{
    BlockDecodingStrategy, FrameDecoder,
    errors::{FrameDecoderError, ReadFrameHeaderError},
};

/// The frames of `input`, decompressed.
pub struct Frames<R> {
    input: R,
    decoder: FrameDecoder,
    in_frame: bool,
}

impl<R: BufRead> Frames<R> {
    /// Decompresses `input`.
    pub fn new(input: R) -> Self {
        Self { input, decoder: FrameDecoder::new(), in_frame: false }
    }
}

impl<R: BufRead> Read for Frames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.in_frame {
                while self.decoder.can_collect() < buf.len() && !self.decoder.is_finished() {
                    let wanted = buf.len() - self.decoder.can_collect();
                    self.decoder
                        .decode_blocks(&mut self.input, BlockDecodingStrategy::UptoBytes(wanted))
                        .map_err(invalid)?;
                }
                let n = self.decoder.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                if !(self.decoder.is_finished() && self.decoder.can_collect() == 0) {
                    continue;
                }
                self.in_frame = false;
            }
            if self.input.fill_buf()?.is_empty() {
                return Ok(0);
            }
            match self.decoder.reset(&mut self.input) {
                Ok(()) => self.in_frame = true,
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame { length, .. })) => {
                    let skipped = io::copy(&mut (&mut self.input).take(u64::from(length)), &mut io::sink())?;
                    if skipped != u64::from(length) {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "a skippable zstd frame is cut short",
                        ));
                    }
                }
                Err(e) => return Err(invalid(e)),
            }
        }
    }
}

fn invalid(error: FrameDecoderError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("not zstd: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decompress(bytes: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Frames::new(io::BufReader::new(bytes)).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn frames_are_read_in_order_and_skippable_ones_skipped() {
        use ruzstd::encoding::{CompressionLevel, compress_to_vec};
        let first: Vec<u8> = (0..200_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let mut stream = compress_to_vec(first.as_slice(), CompressionLevel::Fastest);
        // A skippable frame: magic 0x184D2A50, its length, then that many bytes.
        stream.extend_from_slice(&0x184D_2A50u32.to_le_bytes());
        stream.extend_from_slice(&3u32.to_le_bytes());
        stream.extend_from_slice(b"xyz");
        stream.extend(compress_to_vec(&b"second frame"[..], CompressionLevel::Uncompressed));
        let mut expected = first.clone();
        expected.extend_from_slice(b"second frame");
        assert_eq!(decompress(&stream).expect("decompressed"), expected);
        assert!(decompress(b"not zstd at all").is_err());
        assert!(decompress(&stream[..stream.len() / 2]).is_err(), "a stream cut short is an error");
    }
}
