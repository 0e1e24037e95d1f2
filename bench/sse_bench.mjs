// sse_bench.mjs -- throughput of the npm eventsource-parser on the corpora sse_bench.lua reads.
//
// The same files, cut into chunks of the same size; each chunk is decoded to a string once,
// before any timing (a real client decodes too, so this favours eventsource-parser slightly).
// A first untimed pass checks the events and data bytes against the manifest; then each
// corpus is fed to a fresh parser several times, counting events in onEvent, each timed run
// repeating the corpus until it lasted at least 0.2 s (seconds per pass are reported, as
// sse_bench.lua does). Then the same, read from the file in chunks decoded as they come (the
// "read" records, as sse_bench.lua's). Prints records
// in sse_bench.lua's format for bench/report.lua. Run with --expose-gc so every run starts
// from a collected heap:
//   npm install --no-save --prefix bench eventsource-parser@3
//   node --expose-gc bench/sse_bench.mjs build/bench/sse-corpora.txt 16384
import { closeSync, openSync, readFileSync, readSync } from "node:fs";
import { StringDecoder } from "node:string_decoder";
import { createParser } from "eventsource-parser";

const manifestPath = process.argv[2] || "build/bench/sse-corpora.txt";
const CHUNK = Number(process.argv[3]) || 16 * 1024;
const RUNS = 7;
const MIN_RUN = 0.2; // seconds
const pkg = JSON.parse(readFileSync(new URL("./node_modules/eventsource-parser/package.json", import.meta.url)));
const parserName = `eventsource-parser ${pkg.version}`;
const runtime = `node ${process.version}`;

function chunksOf(file) {
  const bytes = readFileSync(file);
  const decoder = new TextDecoder("utf-8");
  const chunks = [];
  for (let from = 0; from < bytes.length; from += CHUNK) {
    chunks.push(decoder.decode(bytes.subarray(from, from + CHUNK), { stream: true }));
  }
  return { chunks, bytes: bytes.length };
}

function check(corpus, chunks) {
  let count = 0;
  let dataBytes = 0;
  const parser = createParser({
    onEvent(ev) {
      count++;
      dataBytes += Buffer.byteLength(ev.data);
    },
  });
  for (const c of chunks) parser.feed(c);
  if (count !== corpus.events || dataBytes !== corpus.dataBytes) {
    throw new Error(`${parserName} on ${corpus.name}: ${count} events / ${dataBytes} data bytes, ` +
                    `expected ${corpus.events} / ${corpus.dataBytes}`);
  }
}

// The timed loop: seconds, and events seen.
function parse(chunks) {
  let count = 0;
  const parser = createParser({ onEvent() { count++; } });
  const start = process.hrtime.bigint();
  for (let i = 0; i < chunks.length; i++) parser.feed(chunks[i]);
  return [Number(process.hrtime.bigint() - start) / 1e9, count];
}

// Read from the file in CHUNK-byte reads, each decoded as it comes, as a client gets a stream:
// seconds, and events seen (sse_bench.lua's "read" records). StringDecoder keeps a character
// split between reads whole, as TextDecoder's stream mode does, and is the faster of the two
// here (5.3 against 3.2 M events/s on the small corpus).
function parseRead(file) {
  let count = 0;
  const parser = createParser({ onEvent() { count++; } });
  const decoder = new StringDecoder("utf8");
  const buf = Buffer.alloc(CHUNK);
  const start = process.hrtime.bigint();
  const fd = openSync(file, "r");
  let n;
  while ((n = readSync(fd, buf, 0, CHUNK, null)) > 0) parser.feed(decoder.write(buf.subarray(0, n)));
  closeSync(fd);
  return [Number(process.hrtime.bigint() - start) / 1e9, count];
}

function timeRuns(parseOnce, events) {
  parseOnce(); // warm up the JIT
  const [warm] = parseOnce();
  const passes = Math.max(1, Math.ceil(MIN_RUN / warm));
  const times = [];
  for (let run = 0; run < RUNS; run++) {
    if (global.gc) global.gc();
    let seconds = 0;
    for (let pass = 0; pass < passes; pass++) {
      const [s, count] = parseOnce();
      if (count !== events) throw new Error(`${parserName}: lost events in a timed run`);
      seconds += s;
    }
    times.push((seconds / passes).toFixed(6));
  }
  return times;
}

for (const line of readFileSync(manifestPath, "utf8").split("\n")) {
  const [name, file, events, dataBytes] = line.split("\t");
  if (!file) continue;
  const corpus = { name, events: Number(events), dataBytes: Number(dataBytes) };
  const { chunks, bytes } = chunksOf(file);
  check(corpus, chunks);
  const times = timeRuns(() => parse(chunks), corpus.events);
  console.log(["sse", name, parserName, runtime, bytes, corpus.events, times.join(",")].join("\t"));
  const read = timeRuns(() => parseRead(file), corpus.events);
  console.log(["read", name, parserName, runtime, bytes, corpus.events, read.join(",")].join("\t"));
}
