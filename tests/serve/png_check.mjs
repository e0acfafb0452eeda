// Checks that a buffer is a whole, valid PNG (signature, chunk CRCs, IHDR, IDAT that inflates to
// exactly the image's scanlines) and counts its distinct colours, so a test can tell a rendered
// page from a blank one. 8-bit RGB or RGBA, non-interlaced (what chromium writes). Throws Error.
//
//   node tests/serve/png_check.mjs FILE.png   # prints {"width","height","colors"}
import { readFileSync } from "node:fs";
import { crc32, inflateSync } from "node:zlib";

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export function checkPng(buf) {
  if (buf.length < 8 || !buf.subarray(0, 8).equals(SIGNATURE)) throw new Error("not a PNG: bad signature");
  let pos = 8, ihdr = null, ended = false;
  const idat = [];
  while (pos < buf.length) {
    if (pos + 12 > buf.length) throw new Error("truncated chunk header at byte " + pos);
    const len = buf.readUInt32BE(pos);
    const type = buf.toString("latin1", pos + 4, pos + 8);
    if (pos + 12 + len > buf.length) throw new Error("chunk " + type + " runs past the end");
    const data = buf.subarray(pos + 8, pos + 8 + len);
    if (crc32 && crc32(buf.subarray(pos + 4, pos + 8 + len)) !== buf.readUInt32BE(pos + 8 + len))
      throw new Error("chunk " + type + " has a wrong CRC");
    if (type === "IHDR") ihdr = data;
    else if (type === "IDAT") idat.push(data);
    else if (type === "IEND") { ended = true; break; }
    pos += 12 + len;
  }
  if (!ihdr || !ended || !idat.length) throw new Error("missing IHDR, IDAT or IEND");
  const width = ihdr.readUInt32BE(0), height = ihdr.readUInt32BE(4);
  const depth = ihdr[8], colorType = ihdr[9], interlace = ihdr[12];
  const channels = { 2: 3, 6: 4 }[colorType];
  if (depth !== 8 || !channels || interlace !== 0)
    throw new Error(`unsupported PNG: depth ${depth}, colour type ${colorType}, interlace ${interlace}`);
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  if (raw.length !== height * (stride + 1))
    throw new Error(`IDAT holds ${raw.length} bytes, expected ${height * (stride + 1)} for ${width}x${height}`);
  // Undo the per-scanline filters (PNG spec, section 9) and count colours.
  const prev = Buffer.alloc(stride), line = Buffer.alloc(stride);
  const colors = new Set();
  for (let y = 0; y < height; y++) {
    const row = y * (stride + 1), filter = raw[row];
    for (let i = 0; i < stride; i++) {
      const x = raw[row + 1 + i];
      const a = i >= channels ? line[i - channels] : 0, b = prev[i], c = i >= channels ? prev[i - channels] : 0;
      let v;
      if (filter === 0) v = x;
      else if (filter === 1) v = x + a;
      else if (filter === 2) v = x + b;
      else if (filter === 3) v = x + ((a + b) >> 1);
      else if (filter === 4) {
        const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        v = x + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
      } else throw new Error("unknown filter " + filter + " on row " + y);
      line[i] = v & 0xff;
    }
    if (colors.size < 100000)
      for (let i = 0; i < stride; i += channels) colors.add(line.readUIntBE(i, 3));
    line.copy(prev);
  }
  return { width, height, colors: colors.size };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    console.log(JSON.stringify(checkPng(readFileSync(process.argv[2]))));
  } catch (e) {
    console.error("png_check: " + process.argv[2] + ": " + e.message);
    process.exit(1);
  }
}
