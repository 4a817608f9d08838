import { createReadStream } from "node:fs";
import {
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
} from "node:fs/promises";
import { basename, dirname, join } from "node:path";

// Where a backup's files go: a folder, or one tar file (`--out backup.tar`) holding the same files,
// which `tar -xf` unpacks into that folder. The tar is written in one pass: the snapshot's size is
// not known until it has arrived, so its header is written as a placeholder and filled in after.

/** Writes a backup's files, in a temporary place until `commit` puts them where they belong. */
export interface BackupSink {
  /** A file written in pieces, in order (the snapshot). Returns its size. */
  streamed(
    name: string,
    fill: (write: (chunk: Uint8Array) => Promise<void>) => Promise<void>,
  ): Promise<number>;
  /** A small file written at once. */
  put(name: string, bytes: Uint8Array): Promise<void>;
  /** Moves the complete backup into place; `replace`: over the backup there. */
  commit(replace: boolean): Promise<void>;
  /** Deletes what was written. */
  discard(): Promise<void>;
}

/** Reads a backup's files. */
export interface BackupSource {
  /** Size of a file, or undefined when the backup has no such file. */
  size(name: string): number | undefined;
  read(name: string): Promise<Uint8Array>;
  stream(name: string): AsyncIterable<Uint8Array>;
  close(): Promise<void>;
}

/** Whether a path names a tar backup rather than a folder. */
export const isTarPath = (path: string) => path.endsWith(".tar");

const temporary = (path: string, what: string) =>
  join(dirname(path), `.${basename(path)}.${what}-${process.pid}`);

export async function folderSink(out: string): Promise<BackupSink> {
  const partial = temporary(out, "partial");
  await rm(partial, { recursive: true, force: true });
  await mkdir(partial, { mode: 0o700 });
  return {
    async streamed(name, fill) {
      const file = await open(join(partial, name), "wx", 0o600);
      let bytes = 0;
      try {
        await fill(async (chunk) => {
          await file.write(chunk);
          bytes += chunk.length;
        });
        await file.sync();
      } finally {
        await file.close();
      }
      return bytes;
    },
    async put(name, bytes) {
      const file = await open(join(partial, name), "wx", 0o600);
      try {
        await file.write(bytes);
        await file.sync();
      } finally {
        await file.close();
      }
    },
    async commit(replace) {
      const there = await stat(out).catch(() => undefined);
      if (there && !replace) await rm(out, { recursive: true }); // an empty folder
      if (there && replace) {
        const old = temporary(out, "old");
        await rename(out, old);
        await rename(partial, out);
        await rm(old, { recursive: true, force: true });
      } else {
        await rename(partial, out);
      }
    },
    discard: () => rm(partial, { recursive: true, force: true }),
  };
}

// ustar, as POSIX defines it: 512-byte headers and blocks, sizes in octal (or, past 8 GiB, in
// base-256 as GNU tar and bsdtar read them).
const block = 512;

function tarHeader(name: string, size: number, mtime: number): Uint8Array {
  const h = Buffer.alloc(block);
  const field = (offset: number, length: number, value: string) =>
    h.write(value, offset, length, "utf8");
  const octal = (offset: number, length: number, value: number) =>
    field(offset, length, `${value.toString(8).padStart(length - 1, "0")}\0`);
  if (Buffer.byteLength(name) > 100) throw new RangeError(`tar entry name too long: ${name}`);
  field(0, 100, name);
  octal(100, 8, 0o600);
  octal(108, 8, 0);
  octal(116, 8, 0);
  if (size < 8 ** 11) octal(124, 12, size);
  else {
    h[124] = 0x80;
    let v = BigInt(size);
    for (let i = 135; i > 124; i--) {
      h[i] = Number(v & 0xffn);
      v >>= 8n;
    }
  }
  octal(136, 12, Math.floor(mtime / 1000));
  field(156, 1, "0");
  field(257, 6, "ustar\0");
  field(263, 2, "00");
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of h) sum += byte;
  field(148, 8, `${sum.toString(8).padStart(6, "0")}\0 `);
  return h;
}

function tarSize(h: Uint8Array): number {
  if (((h[124] ?? 0) & 0x80) !== 0) {
    let v = 0n;
    for (let i = 125; i < 136; i++) v = (v << 8n) | BigInt(h[i] ?? 0);
    return Number(v);
  }
  const text = Buffer.from(h.subarray(124, 136))
    .toString("latin1")
    .replace(/[\0 ]+$/, "")
    .trim();
  return text === "" ? 0 : Number.parseInt(text, 8);
}

const padding = (size: number) => (block - (size % block)) % block;

export async function tarSink(out: string): Promise<BackupSink> {
  const partial = temporary(out, "partial");
  await rm(partial, { force: true });
  const file: FileHandle = await open(partial, "wx", 0o600);
  let position = 0;
  const append = async (bytes: Uint8Array) => {
    await file.write(bytes, 0, bytes.length, position);
    position += bytes.length;
  };
  const pad = (size: number) => append(new Uint8Array(padding(size)));
  let closed = false;
  const close = async () => {
    if (!closed) {
      closed = true;
      await file.close();
    }
  };
  return {
    async streamed(name, fill) {
      const at = position;
      await append(new Uint8Array(block));
      let bytes = 0;
      await fill(async (chunk) => {
        await append(chunk);
        bytes += chunk.length;
      });
      await pad(bytes);
      const header = tarHeader(name, bytes, Date.now());
      await file.write(header, 0, block, at);
      return bytes;
    },
    async put(name, bytes) {
      await append(tarHeader(name, bytes.length, Date.now()));
      await append(bytes);
      await pad(bytes.length);
    },
    async commit() {
      await append(new Uint8Array(2 * block));
      await file.sync();
      await close();
      await rename(partial, out);
    },
    async discard() {
      await close();
      await rm(partial, { force: true });
    },
  };
}

export async function folderSource(folder: string): Promise<BackupSource> {
  const sizes = new Map<string, number>();
  for (const name of await readdir(folder)) {
    const s = await stat(join(folder, name));
    if (s.isFile()) sizes.set(name, s.size);
  }
  return {
    size: (name) => sizes.get(name),
    read: async (name) => new Uint8Array(await readFile(join(folder, name))),
    stream: (name) => createReadStream(join(folder, name), { highWaterMark: 256 * 1024 }),
    close: async () => undefined,
  };
}

/**
 * Reads a tar of a backup: ours, or one an operator made of a backup folder (`tar -cf b.tar -C dir
 * .`): regular files at the top level, with or without `./`; PAX and GNU long-name records are
 * honoured, folders skipped.
 */
export async function tarSource(path: string): Promise<BackupSource> {
  const file = await open(path, "r");
  const entries = new Map<string, { offset: number; size: number }>();
  try {
    const length = (await file.stat()).size;
    const header = new Uint8Array(block);
    let offset = 0;
    let longName: string | undefined;
    let paxSize: number | undefined;
    while (offset + block <= length) {
      await file.read(header, 0, block, offset);
      if (header.every((b) => b === 0)) break;
      let size = paxSize ?? tarSize(header);
      const type = String.fromCharCode(header[156] ?? 0);
      const dataAt = offset + block;
      if (!Number.isSafeInteger(size) || size < 0 || dataAt + size > length) {
        throw new RangeError(`a tar entry at byte ${offset} runs past the end of the file`);
      }
      const text = (from: number, to: number) =>
        Buffer.from(header.subarray(from, to)).toString("utf8").replace(/\0.*$/s, "");
      if (type === "x" || type === "L") {
        const body = Buffer.alloc(size);
        await file.read(body, 0, size, dataAt);
        if (type === "L") longName = body.toString("utf8").replace(/\0.*$/s, "");
        else {
          for (const record of body.toString("utf8").split("\n")) {
            const m = /^\d+ (path|size)=(.*)$/.exec(record);
            if (m?.[1] === "path") longName = m[2];
            if (m?.[1] === "size") paxSize = Number(m[2]);
          }
        }
      } else {
        const prefix = text(345, 500);
        const name = (longName ?? (prefix ? `${prefix}/${text(0, 100)}` : text(0, 100))).replace(
          /^\.\//,
          "",
        );
        if ((type === "0" || type === "\0") && !name.includes("/")) {
          entries.set(name, { offset: dataAt, size });
        }
        longName = undefined;
        paxSize = undefined;
      }
      size = size + padding(size);
      offset = dataAt + size;
    }
  } catch (e) {
    await file.close();
    throw e;
  }
  return {
    size: (name) => entries.get(name)?.size,
    async read(name) {
      const e = entries.get(name);
      if (!e) throw new RangeError(`no ${name} in ${path}`);
      const bytes = new Uint8Array(e.size);
      await file.read(bytes, 0, e.size, e.offset);
      return bytes;
    },
    stream(name) {
      const e = entries.get(name);
      if (!e) throw new RangeError(`no ${name} in ${path}`);
      if (e.size === 0) return (async function* () {})();
      return createReadStream("", {
        fd: file,
        start: e.offset,
        end: e.offset + e.size - 1,
        autoClose: false,
        highWaterMark: 256 * 1024,
      });
    },
    close: () => file.close(),
  };
}
