#!/usr/bin/env python3
"""Tokens/s: Openloop's in-process `local` provider vs llama.cpp's server, same GGUF.

Usage (from the repository root, after `cargo build --release -p llm --example local_bench`
and the set-up in bench/llamacpp/README.md):

    bench/llamacpp/.venv/bin/python bench/llamacpp/run.py GGUF [--rounds 5] [--max-tokens 128]

Both sides get the same single user message, rendered with the model's ChatML template
(llama.cpp: the GGUF's own chat template; Openloop: its ChatML renderer, which adds the same
default system prompt for SmolLM2), the same max_tokens, greedy decoding (temperature 0)
and both CPU cores. Rounds alternate A (llama.cpp) and B (Openloop) so that both see the
same machine noise. Each measurement is one whole generation after a warm-up: completion
tokens / wall-clock seconds (prompt processing included; the prompt is ~40 tokens).
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

PROMPT = "Count from 1 to 200, separated by commas."


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_llamacpp(python, gguf, port, threads):
    cmd = [python, "-m", "llama_cpp.server", "--model", gguf, "--n_ctx", "2048", "--n_threads", str(threads),
           "--n_threads_batch", str(threads), "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1).read()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    sys.exit("llama.cpp server did not start within 120 s")


def run_llamacpp(port, max_tokens):
    # <|endoftext|> (0) and <|im_end|> (2) banned: llama.cpp's greedy text ends early where
    # Openloop's keeps going, and tokens/s is compared over the same number of tokens.
    body = json.dumps({"messages": [{"role": "user", "content": PROMPT}], "max_tokens": max_tokens,
                       "temperature": 0, "top_k": 1, "stream": False,
                       "logit_bias": {"0": -100, "2": -100}, "logit_bias_type": "input_ids"}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                 headers={"content-type": "application/json"})
    started = time.perf_counter()
    out = json.loads(urllib.request.urlopen(req, timeout=600).read())
    total = time.perf_counter() - started
    tokens = out["usage"]["completion_tokens"]
    return {"completion_tokens": tokens, "total_s": total, "tokens_per_s": tokens / total,
            "text": out["choices"][0]["message"]["content"]}


def run_openloop(bench_bin, gguf, max_tokens):
    out = subprocess.run([bench_bin, gguf, PROMPT, str(max_tokens), "1"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    ap.add_argument("--bench-bin", default=os.path.join(target, "release", "examples", "local_bench"))
    args = ap.parse_args()

    port = free_port()
    server = start_llamacpp(sys.executable, args.gguf, port, args.threads)
    try:
        # Warm-up (page cache, llama.cpp's first-request allocations).
        run_llamacpp(port, 8)
        run_openloop(args.bench_bin, args.gguf, 8)
        a, b = [], []
        for i in range(args.rounds):
            ra = run_llamacpp(port, args.max_tokens)
            rb = run_openloop(args.bench_bin, args.gguf, args.max_tokens)
            a.append(ra)
            b.append(rb)
            if i == 0:
                print(f"llama.cpp text: {ra['text'][:120]!r}", file=sys.stderr)
            print(f"round {i + 1}: llama.cpp {ra['tokens_per_s']:.1f} tok/s ({ra['completion_tokens']} tokens), "
                  f"openloop {rb['tokens_per_s']:.1f} tok/s ({rb['completion_tokens']} tokens, "
                  f"first token {rb['first_token_s'] * 1000:.0f} ms)", file=sys.stderr)
        med_a = statistics.median(r["tokens_per_s"] for r in a)
        med_b = statistics.median(r["tokens_per_s"] for r in b)
        print("| side | completion tokens | tokens/s (median of %d) | min–max |" % args.rounds)
        print("| --- | --- | --- | --- |")
        for name, rs, med in (("llama.cpp server (llama-cpp-python)", a, med_a), ("Openloop local (candle)", b, med_b)):
            lo = min(r["tokens_per_s"] for r in rs)
            hi = max(r["tokens_per_s"] for r in rs)
            print(f"| {name} | {rs[0]['completion_tokens']} | {med:.1f} | {lo:.1f}–{hi:.1f} |")
        print(f"\nOpenloop / llama.cpp = {med_b / med_a:.2f}")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
