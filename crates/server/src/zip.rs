//! A streaming ZIP writer (stored entries, data descriptors, UTF-8 names): entries are
//! written as their bytes arrive, so a download of many files needs constant memory.
//! (The `zip` crate needs a seekable writer; a response body is not one.)

use bytes::{BufMut, Bytes, BytesMut};

pub struct ZipStream {
    offset: u64,
    central: BytesMut,
    entries: u16,
    // Current entry.
    crc: crc32fast::Hasher,
    size: u64,
    start: u64,
    name: Vec<u8>,
}

const FLAGS: u16 = 0x0808; // data descriptor + UTF-8 names
const DOS_TIME: u16 = 0;
const DOS_DATE: u16 = 0x0021; // 1980-01-01

impl Default for ZipStream {
    fn default() -> Self {
        ZipStream { offset: 0, central: BytesMut::new(), entries: 0, crc: crc32fast::Hasher::new(), size: 0, start: 0, name: vec![] }
    }
}

impl ZipStream {
    /// Local header of a new entry.
    pub fn begin(&mut self, name: &str) -> Bytes {
        self.name = name.as_bytes().to_vec();
        self.crc = crc32fast::Hasher::new();
        self.size = 0;
        self.start = self.offset;
        let mut b = BytesMut::with_capacity(30 + self.name.len());
        b.put_u32_le(0x0403_4b50);
        b.put_u16_le(20);
        b.put_u16_le(FLAGS);
        b.put_u16_le(0); // stored
        b.put_u16_le(DOS_TIME);
        b.put_u16_le(DOS_DATE);
        b.put_u32_le(0);
        b.put_u32_le(0);
        b.put_u32_le(0);
        b.put_u16_le(self.name.len() as u16);
        b.put_u16_le(0);
        b.put_slice(&self.name);
        self.offset += b.len() as u64;
        b.freeze()
    }

    /// Entry data (passed through, counted).
    pub fn data(&mut self, chunk: &Bytes) {
        self.crc.update(chunk);
        self.size += chunk.len() as u64;
        self.offset += chunk.len() as u64;
    }

    /// Data descriptor closing the entry.
    pub fn end(&mut self) -> Bytes {
        let crc = std::mem::take(&mut self.crc).finalize();
        let size = self.size.min(u32::MAX as u64) as u32;
        let mut b = BytesMut::with_capacity(16);
        b.put_u32_le(0x0807_4b50);
        b.put_u32_le(crc);
        b.put_u32_le(size);
        b.put_u32_le(size);
        self.offset += 16;
        let c = &mut self.central;
        c.put_u32_le(0x0201_4b50);
        c.put_u16_le(20);
        c.put_u16_le(20);
        c.put_u16_le(FLAGS);
        c.put_u16_le(0);
        c.put_u16_le(DOS_TIME);
        c.put_u16_le(DOS_DATE);
        c.put_u32_le(crc);
        c.put_u32_le(size);
        c.put_u32_le(size);
        c.put_u16_le(self.name.len() as u16);
        c.put_u16_le(0);
        c.put_u16_le(0);
        c.put_u16_le(0);
        c.put_u16_le(0);
        c.put_u32_le(0);
        c.put_u32_le(self.start.min(u32::MAX as u64) as u32);
        c.put_slice(&self.name);
        self.entries += 1;
        b.freeze()
    }

    /// Central directory and end record.
    pub fn finish(mut self) -> Bytes {
        let cd_size = self.central.len() as u32;
        let cd_offset = self.offset.min(u32::MAX as u64) as u32;
        let mut b = std::mem::take(&mut self.central);
        b.put_u32_le(0x0605_4b50);
        b.put_u16_le(0);
        b.put_u16_le(0);
        b.put_u16_le(self.entries);
        b.put_u16_le(self.entries);
        b.put_u32_le(cd_size);
        b.put_u32_le(cd_offset);
        b.put_u16_le(0);
        b.freeze()
    }
}
