//! Streaming ZIP archives on `async_zip`: stored entries with data descriptors, written as
//! their bytes arrive (constant memory), ZIP64 wherever sizes or offsets pass 4 GiB.

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{AsyncWriteExt, Stream, StreamExt};

/// One entry: its name and a stream of its bytes (opened when the entry is written).
pub type Entry = (String, BoxStream<'static, std::io::Result<Bytes>>);

/// The archive of `entries` as a byte stream. A failing entry ends the stream with an
/// error (the client sees a broken download, never a silently truncated archive).
pub fn archive(entries: impl Stream<Item = std::io::Result<Entry>> + Send + 'static) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let (writer, reader) = tokio::io::duplex(256 * 1024);
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<std::io::Error>();
    tokio::spawn(async move {
        if let Err(e) = write(entries, writer).await {
            let _ = failed_tx.send(e);
        }
    });
    let tail = futures::stream::once(async move {
        match failed_rx.await {
            Ok(e) => Some(Err(e)),
            Err(_) => None,
        }
    })
    .filter_map(futures::future::ready);
    tokio_util::io::ReaderStream::new(reader).chain(tail)
}

async fn write(entries: impl Stream<Item = std::io::Result<Entry>>, out: tokio::io::DuplexStream) -> std::io::Result<()> {
    use async_zip::base::write::ZipFileWriter;
    use async_zip::{Compression, ZipEntryBuilder};
    let zerr = |e: async_zip::error::ZipError| std::io::Error::other(e.to_string());
    let mut zip = ZipFileWriter::with_tokio(out);
    futures::pin_mut!(entries);
    while let Some(entry) = entries.next().await {
        let (name, mut data) = entry?;
        let mut w = zip.write_entry_stream(ZipEntryBuilder::new(name.into(), Compression::Stored)).await.map_err(zerr)?;
        while let Some(chunk) = data.next().await {
            w.write_all(&chunk?).await?;
        }
        w.close().await.map_err(zerr)?;
    }
    zip.close().await.map_err(zerr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zeros(len: u64) -> BoxStream<'static, std::io::Result<Bytes>> {
        const CHUNK: u64 = 1 << 20;
        let block = Bytes::from(vec![0u8; CHUNK as usize]);
        futures::stream::unfold(len, move |left| {
            let block = block.clone();
            async move { (left > 0).then(|| (Ok(block.slice(..left.min(CHUNK) as usize)), left - left.min(CHUNK))) }
        })
        .boxed()
    }

    async fn to_file(entries: Vec<Entry>, path: &std::path::Path) {
        use tokio::io::AsyncWriteExt;
        let mut f = tokio::fs::File::create(path).await.unwrap();
        let s = archive(futures::stream::iter(entries.into_iter().map(Ok)));
        futures::pin_mut!(s);
        while let Some(chunk) = s.next().await {
            f.write_all(&chunk.unwrap()).await.unwrap();
        }
        f.flush().await.unwrap();
    }

    /// Checks an archive with Info-ZIP's own reader when installed, else with Python's zipfile.
    fn verify(path: &std::path::Path, names: &[&str]) {
        let script = "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nprint('\\n'.join(f'{i.filename} {i.file_size}' for i in z.infolist()))\nassert z.testzip() is None\n";
        let out = std::process::Command::new("python3").arg("-c").arg(script).arg(path).output().expect("python3");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let listing = String::from_utf8_lossy(&out.stdout);
        for n in names {
            assert!(listing.contains(n), "{listing}");
        }
    }

    #[tokio::test]
    async fn small_archive_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.zip");
        let entries: Vec<Entry> = vec![
            (
                "a.txt".into(),
                futures::stream::iter([Ok(Bytes::from_static(b"hello "))]).chain(futures::stream::iter([Ok(Bytes::from_static(b"world"))])).boxed(),
            ),
            ("naïve (1).md".into(), futures::stream::iter([Ok(Bytes::from_static(b"# x"))]).boxed()),
        ];
        to_file(entries, &path).await;
        verify(&path, &["a.txt 11", "naïve (1).md 3"]);
    }

    #[tokio::test]
    async fn failing_entry_breaks_the_stream() {
        let entries: Vec<Entry> = vec![("a.txt".into(), futures::stream::iter([Err(std::io::Error::other("gone"))]).boxed())];
        let s = archive(futures::stream::iter(entries.into_iter().map(Ok)));
        let items: Vec<_> = s.collect().await;
        assert!(items.last().is_some_and(|r| r.is_err()), "the last item is the error");
    }

    /// Over 4 GiB of entry data and offsets: ZIP64 fields make the archive readable.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn archives_over_4_gib_use_zip64() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.zip");
        let entries: Vec<Entry> =
            vec![("big.bin".into(), zeros((4u64 << 30) + 1024)), ("after.txt".into(), futures::stream::iter([Ok(Bytes::from_static(b"tail"))]).boxed())];
        to_file(entries, &path).await;
        verify(&path, &["big.bin 4294968320", "after.txt 4"]);
    }
}
