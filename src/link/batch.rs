//! A batch of frames read in one wake-up: one contiguous buffer, allocated
//! once, plus the offsets of the frames in it.
//!
//! Invariants: the buffer never grows after construction; a frame is only
//! pushed if it fits whole; at most `max_frames` frames are held.

use std::ops::Range;

pub struct FrameBatch {
    buf: Box<[u8]>,
    used: usize,
    frames: Vec<Range<usize>>,
    max_frames: usize,
}

impl FrameBatch {
    /// A batch of `bytes` bytes holding at most `max_frames` frames.
    pub fn new(bytes: usize, max_frames: usize) -> FrameBatch {
        FrameBatch {
            buf: vec![0; bytes].into_boxed_slice(),
            used: 0,
            frames: Vec::with_capacity(max_frames),
            max_frames,
        }
    }

    pub fn clear(&mut self) {
        self.used = 0;
        self.frames.clear();
    }

    /// Free space for the next frame, or `None` when the batch cannot take
    /// one more frame of up to `need` bytes.
    pub fn spare(&mut self, need: usize) -> Option<&mut [u8]> {
        if self.frames.len() >= self.max_frames || self.buf.len() - self.used < need {
            return None;
        }
        Some(&mut self.buf[self.used..])
    }

    /// Commits `len` bytes written into [`FrameBatch::spare`] as one frame.
    pub fn commit(&mut self, len: usize) {
        let end = (self.used + len).min(self.buf.len());
        self.frames.push(self.used..end);
        self.used = end;
    }

    /// Commits `len` bytes written into [`FrameBatch::spare`] of which the
    /// first `header` are not part of the frame (a virtio-net header).
    pub fn commit_after(&mut self, header: usize, len: usize) {
        let start = (self.used + header).min(self.buf.len());
        let end = (self.used + len).min(self.buf.len()).max(start);
        self.frames.push(start..end);
        self.used = end;
    }

    /// The whole buffer, for a link that parses frames out of a byte
    /// stream it reads into it ([`super::stream`]); the frames found are then
    /// declared with [`FrameBatch::push_frame`]. Only valid on a cleared
    /// batch.
    pub fn raw(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// Declares bytes `range` of [`FrameBatch::raw`] a frame; `false` (and
    /// nothing recorded) if the range is out of bounds or the batch holds
    /// `max_frames` already.
    pub fn push_frame(&mut self, range: Range<usize>) -> bool {
        if self.frames.len() >= self.max_frames
            || range.end > self.buf.len()
            || range.start > range.end
        {
            return false;
        }
        self.used = self.used.max(range.end);
        self.frames.push(range);
        true
    }

    pub fn max_frames(&self) -> usize {
        self.max_frames
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.frames.iter().map(|r| &self.buf[r.clone()])
    }

    /// Frame `index` of the batch.
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        self.buf.get(self.frames.get(index)?.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_holds_frames_until_full() {
        let mut b = FrameBatch::new(100, 3);
        for n in [10usize, 20, 30] {
            let spare = b.spare(n).unwrap();
            spare[..n].fill(n as u8);
            b.commit(n);
        }
        assert!(b.spare(1).is_none(), "frame count limit");
        let lens: Vec<usize> = b.iter().map(|f| f.len()).collect();
        assert_eq!(lens, [10, 20, 30]);
        assert!(b.iter().all(|f| f.iter().all(|&x| x as usize == f.len())));
        b.clear();
        assert!(b.is_empty());
        assert!(b.spare(101).is_none(), "byte limit");
        assert!(b.spare(100).is_some());
    }

    #[test]
    fn batch_commit_after_leaves_the_header_out() {
        let mut b = FrameBatch::new(100, 3);
        let spare = b.spare(20).unwrap();
        spare[..4].fill(0xee);
        spare[4..20].fill(7);
        b.commit_after(4, 20);
        b.spare(10).unwrap()[..10].fill(9);
        b.commit(10);
        let frames: Vec<&[u8]> = b.iter().collect();
        assert_eq!(frames[0], &[7u8; 16][..]);
        assert_eq!(frames[1], &[9u8; 10][..]);
    }
}
