//! `loop_file`: a loop whose items are the lines of a flow file, read as a stream, and
//! whose results go to a JSON-lines run file. Nothing it holds grows with the file: at
//! most `concurrency` items are in flight, each result is committed as a row when it
//! finishes (top level) and the results file is written from those rows a page at a
//! time. A restarted run skips the lines whose result was committed.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::{Map, Value};

use super::document::{Graph, Node};
use super::nodes::{single_or_object, NodeOutput};
use super::runner::{run_inline, run_namespace, RunCtx};

/// Longest line accepted (an item is one line).
const MAX_LINE: usize = 1 << 20;
/// Committed results read back per page when writing the results file.
const PAGE: usize = 1000;

/// Runs the loop over the lines of the flow file `file_name`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    ctx: &Arc<RunCtx>,
    node: &Node,
    graph: Arc<Graph>,
    item_input: &str,
    concurrency: usize,
    file_name: &str,
    scope: &str,
    top: bool,
) -> Result<NodeOutput, String> {
    let engine = &ctx.engine;
    let blobs = engine.blobs.as_ref().ok_or("file storage is not configured")?;
    let file = find_file(ctx, file_name).await?;
    let read = blobs.get(&file.blob_key, None).await.map_err(|e| format!("reading {file_name} failed: {e}"))?;

    // A top-level loop commits each result as a row; a resumed run skips those lines.
    let durable = if top { ctx.owner.clone() } else { None };
    let mut done: HashSet<i64> = HashSet::new();
    let mut cost = 0.0;
    if durable.is_some() {
        let mut after = -1;
        loop {
            let page = engine.store.flow_loop_items(&ctx.run.id, &node.id, after, PAGE).await.map_err(|e| e.to_string())?;
            let Some(last) = page.last().map(|(i, _, _)| *i) else { break };
            after = last;
            for (i, _, c) in page {
                done.insert(i);
                cost += c;
            }
        }
    }
    let resumed = done.len();
    // Results of a nested (in-memory) loop are kept until the file is written.
    let mut kept: BTreeMap<i64, Value> = BTreeMap::new();
    let mut count: i64 = 0;
    let mut stream = lines(read.stream)
        .enumerate()
        .map(|(i, line)| (i as i64, line))
        .filter(|(i, _)| futures::future::ready(!done.contains(i)))
        .map(|(i, line)| {
            let (graph, ctx, durable) = (graph.clone(), ctx.clone(), durable.clone());
            let scope = format!("{scope}-{i}");
            let (node_id, item_input) = (node.id.clone(), item_input.to_string());
            async move {
                let line = line.map_err(|e| format!("line {}: {e}", i + 1))?;
                let inputs: Map<String, Value> = [(item_input, Value::String(line))].into_iter().collect();
                let (outputs, c) = run_inline(&ctx, &graph, inputs, &scope).await.map_err(|e| format!("line {}: {e}", i + 1))?;
                let v = single_or_object(&graph, outputs);
                if let Some(owner) = &durable {
                    let stored = ctx.engine.store.commit_flow_loop_item(owner, &ctx.run.id, &node_id, i, &v, c).await.map_err(|e| e.to_string())?;
                    if !stored {
                        return Err("stopped".to_string());
                    }
                    return Ok::<_, String>((i, None, c));
                }
                Ok((i, Some(v), c))
            }
        })
        .buffer_unordered(concurrency);
    while let Some(r) = stream.next().await {
        let (i, v, c) = r?;
        cost += c;
        count = count.max(i + 1);
        if let Some(v) = v {
            kept.insert(i, v);
        }
    }
    drop(stream);
    // Lines skipped as already done count too.
    count = count.max(done.iter().max().map(|m| m + 1).unwrap_or(0));

    // The results file: committed rows a page at a time (or the kept ones), in line order.
    let results_name = format!("{}-results.jsonl", node.id);
    let (tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let writer = {
        let ctx = ctx.clone();
        let node_id = node.id.clone();
        async move {
            let mut tx = tx;
            let r = write_results(&ctx, &node_id, durable.is_some(), &kept, &mut tx).await;
            if let Err(e) = &r {
                // Abort the upload: no partial results file is stored.
                let _ = futures::SinkExt::send(&mut tx, Err(std::io::Error::other(e.clone()))).await;
            }
            r
        }
    };
    let (written, stored) = futures::join!(writer, ctx.write_run_file_stream(&results_name, rx));
    written?;
    let stored = stored?;

    let mut out = NodeOutput::default();
    out.ports.insert("file_name".into(), Value::String(stored));
    out.ports.insert("count".into(), Value::from(count));
    out.credit_cost = cost;
    out.log.push(if resumed > 0 {
        format!("Node {} ran {count} lines of {file_name} ({resumed} committed before a restart)", node.id)
    } else {
        format!("Node {} ran {count} lines of {file_name}", node.id)
    });
    Ok(out)
}

type Chunks = futures::channel::mpsc::Sender<Result<Bytes, std::io::Error>>;

/// Sends the results as JSON lines in line order: committed rows a page at a time, or
/// the kept ones of an in-memory loop.
async fn write_results(ctx: &RunCtx, node_id: &str, durable: bool, kept: &BTreeMap<i64, Value>, tx: &mut Chunks) -> Result<(), String> {
    async fn send(tx: &mut Chunks, buf: Vec<u8>) -> Result<(), String> {
        futures::SinkExt::send(tx, Ok(Bytes::from(buf))).await.map_err(|_| "the results file was not stored".to_string())
    }
    if durable {
        let mut after = -1;
        loop {
            let page = ctx.engine.store.flow_loop_items(&ctx.run.id, node_id, after, PAGE).await.map_err(|e| e.to_string())?;
            let Some(last) = page.last().map(|(i, _, _)| *i) else { break };
            after = last;
            let mut buf = Vec::with_capacity(page.len() * 32);
            for (_, v, _) in page {
                serde_json::to_writer(&mut buf, &v).map_err(|e| e.to_string())?;
                buf.push(b'\n');
            }
            send(tx, buf).await?;
        }
    } else {
        let mut buf = Vec::new();
        for v in kept.values() {
            serde_json::to_writer(&mut buf, v).map_err(|e| e.to_string())?;
            buf.push(b'\n');
            if buf.len() >= 64 * 1024 {
                send(tx, std::mem::take(&mut buf)).await?;
            }
        }
        if !buf.is_empty() {
            send(tx, buf).await?;
        }
    }
    Ok(())
}

/// The flow file a run may read by name: one this run wrote, else the run's workspace's
/// upload (F8).
async fn find_file(ctx: &RunCtx, name: &str) -> Result<store::SessionFileRecord, String> {
    let clean = crate::files::sanitize_file_name(name).map_err(|_| format!("invalid file name {name:?}"))?;
    let store = &ctx.engine.store;
    for ns in [run_namespace(&ctx.run.id), crate::flowfiles::namespace(ctx.run.team_id.as_deref(), &ctx.run.user_id)] {
        if let Some(f) = store.flow_file(&ns, &clean).await.map_err(|e| e.to_string())? {
            return Ok(f);
        }
    }
    Err(format!("no file named {name:?} (upload it with F8, or write it earlier in the run)"))
}

/// The lines of a byte stream (`\n`, an optional `\r` before it removed; a final newline
/// ends the last line), decoded as UTF-8 (invalid sequences replaced).
fn lines(stream: BoxStream<'static, Result<Bytes, blobs::BlobError>>) -> BoxStream<'static, Result<String, String>> {
    struct State {
        stream: BoxStream<'static, Result<Bytes, blobs::BlobError>>,
        buf: Vec<u8>,
        ready: VecDeque<Result<String, String>>,
        ended: bool,
    }
    fn line(mut bytes: Vec<u8>) -> Result<String, String> {
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        Ok(String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }
    let state = State { stream, buf: Vec::new(), ready: VecDeque::new(), ended: false };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(next) = st.ready.pop_front() {
                return Some((next, st));
            }
            if st.ended {
                return None;
            }
            match st.stream.next().await {
                Some(Ok(chunk)) => {
                    let mut start = 0;
                    for (i, b) in chunk.iter().enumerate() {
                        if *b == b'\n' {
                            st.buf.extend_from_slice(&chunk[start..i]);
                            let bytes = std::mem::take(&mut st.buf);
                            st.ready.push_back(line(bytes));
                            start = i + 1;
                        }
                    }
                    st.buf.extend_from_slice(&chunk[start..]);
                    if st.buf.len() > MAX_LINE {
                        st.ready.push_back(Err(format!("a line is longer than {MAX_LINE} bytes")));
                        st.ended = true;
                    }
                }
                Some(Err(e)) => {
                    st.ready.push_back(Err(format!("reading the file failed: {e}")));
                    st.ended = true;
                }
                None => {
                    if !st.buf.is_empty() {
                        let bytes = std::mem::take(&mut st.buf);
                        st.ready.push_back(line(bytes));
                    }
                    st.ended = true;
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_split_across_chunks() {
        let chunks: Vec<Result<Bytes, blobs::BlobError>> = vec![Ok(Bytes::from("a\r\nb")), Ok(Bytes::from("c\n\nd")), Ok(Bytes::from("\n"))];
        let got: Vec<String> = lines(futures::stream::iter(chunks).boxed()).map(|l| l.unwrap()).collect().await;
        assert_eq!(got, vec!["a", "bc", "", "d"]);
        let chunks: Vec<Result<Bytes, blobs::BlobError>> = vec![Ok(Bytes::from("x\ny"))];
        let got: Vec<String> = lines(futures::stream::iter(chunks).boxed()).map(|l| l.unwrap()).collect().await;
        assert_eq!(got, vec!["x", "y"], "a last line without a newline is a line");
    }
}
