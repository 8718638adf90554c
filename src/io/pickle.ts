/**
 * A restricted pickle VM (CPython `Lib/pickle.py` opcode semantics, protocols 0–5) that can only build
 * plain data: numbers, strings, bytes, tuples/lists (JS arrays), dicts (Map) and sets. Every GLOBAL is
 * resolved through a caller-supplied whitelist, and only whitelisted callables can be invoked, so loading a
 * checkpoint never runs code from the file. Opcodes that instantiate arbitrary classes (INST, OBJ,
 * extension registry) are refused.
 */
import { CheckpointError } from '../errors.js';

/** A whitelisted Python callable (REDUCE / NEWOBJ invoke it with the argument tuple). */
export class PyCallable {
  constructor(readonly qualname: string, readonly call: (args: unknown[]) => unknown) {}
}

/** What the caller decides: which globals exist, and what a persistent id means. */
export interface PickleHooks {
  /** Value for GLOBAL `module.name`, or undefined to refuse it. */
  global(module: string, name: string): unknown;
  /** Value for a persistent id (BINPERSID / PERSID). */
  persistentLoad(pid: unknown): unknown;
}

/** Python's raw-unicode-escape: latin-1 text where only \\uXXXX and \\UXXXXXXXX are escapes. */
function rawUnicodeEscape(s: string): string {
  return s.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_, a: string | undefined, b: string | undefined) =>
    String.fromCodePoint(Number.parseInt((a ?? b)!, 16)));
}

/**
 * Run the pickle in `bytes` and return the unpickled value. `what` names the source in errors;
 * `refuseHint` is the HINT when a global is not whitelisted.
 */
export function unpickle(bytes: Uint8Array, hooks: PickleHooks, what: string, refuseHint: string): unknown {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  let p = 0;
  const fail = (problem: string, hint = 'the file is corrupt or not a PyTorch checkpoint; re-save it'): never => {
    throw new CheckpointError(`${what}: ${problem}`, hint);
  };
  const need = (n: number): number => {
    if (!Number.isSafeInteger(n) || n < 0 || p + n > bytes.length) fail(`pickle truncated at byte ${p} (needs ${n} more bytes)`);
    const at = p;
    p += n;
    return at;
  };
  const u8 = () => bytes[need(1)];
  const u16 = () => view.getUint16(need(2), true);
  const u32 = () => view.getUint32(need(4), true);
  const u64 = () => { const at = need(8); return view.getUint32(at, true) + view.getUint32(at + 4, true) * 2 ** 32; };
  const raw = (n: number) => bytes.subarray(need(n), p);
  const utf8 = (n: number) => new TextDecoder().decode(raw(n));
  const latin1 = (n: number): string => {
    const b = raw(n);
    let s = '';
    // In slices: spreading a long array into fromCharCode would overflow the call stack.
    for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192));
    return s;
  };
  const line = (): string => {
    const end = bytes.indexOf(0x0a, p);
    if (end < 0) fail(`pickle truncated at byte ${p} (no end of line)`);
    return latin1(end - p + 1).slice(0, -1);
  };
  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1])) fail(`pickle stack underflow at byte ${p}`);
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) fail(`pickle stack underflow at byte ${p}`);
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) fail(`pickle has no MARK at byte ${p}`);
    return stack.splice(m as number);
  };
  const longFrom = (b: Uint8Array): number | bigint => {
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b.length && b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const intFrom = (s: string): number | boolean | bigint => {
    if (s === '00') return false;
    if (s === '01') return true;
    if (!/^[+-]?\d+L?$/.test(s)) fail(`bad integer literal ${JSON.stringify(s)} in pickle`);
    const v = BigInt(s.replace(/L$/, ''));
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const resolve = (module: string, name: string): unknown => {
    const v = hooks.global(module, name);
    if (v === undefined) fail(`refusing to execute pickle global ${module}.${name}`, refuseHint);
    return v;
  };
  const call = (fn: unknown, args: unknown): unknown => {
    if (!(fn instanceof PyCallable)) fail(`pickle calls a value that is not a whitelisted callable at byte ${p}`, refuseHint);
    if (!Array.isArray(args)) fail(`pickle call of ${(fn as PyCallable).qualname} without an argument tuple`);
    return (fn as PyCallable).call(args as unknown[]);
  };
  const setItems = (d: unknown, items: unknown[]): void => {
    if (!(d instanceof Map)) fail(`pickle SETITEM(S) on a value that is not a dict at byte ${p}`);
    for (let i = 0; i + 1 < items.length; i += 2) (d as Map<unknown, unknown>).set(items[i], items[i + 1]);
  };
  const append = (l: unknown, items: unknown[]): void => {
    if (!Array.isArray(l)) fail(`pickle APPEND(S) on a value that is not a list at byte ${p}`);
    (l as unknown[]).push(...items);
  };

  for (;;) {
    const at = p;
    const op = u8();
    switch (op) {
      case 0x80: u8(); break; // PROTO
      case 0x95: u64(); break; // FRAME: framing is only a read-ahead hint
      case 0x2e: { // STOP
        if (stack.length !== 1 || marks.length) fail(`pickle ends with ${stack.length} values on the stack`);
        return stack[0];
      }
      case 0x28: marks.push(stack.length); break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4a: stack.push(view.getInt32(need(4), true)); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: stack.push(longFrom(raw(u8()))); break; // LONG1
      case 0x8b: stack.push(longFrom(raw(view.getInt32(need(4), true)))); break; // LONG4
      case 0x49: case 0x4c: stack.push(intFrom(line())); break; // INT, LONG
      case 0x47: stack.push(view.getFloat64(need(8), false)); break; // BINFLOAT (big-endian)
      case 0x46: stack.push(Number.parseFloat(line())); break; // FLOAT
      case 0x58: stack.push(utf8(u32())); break; // BINUNICODE
      case 0x8c: stack.push(utf8(u8())); break; // SHORT_BINUNICODE
      case 0x56: stack.push(rawUnicodeEscape(line())); break; // UNICODE (protocol 0)
      case 0x8d: stack.push(utf8(u64())); break; // BINUNICODE8
      case 0x54: stack.push(latin1(view.getInt32(need(4), true))); break; // BINSTRING
      case 0x55: stack.push(latin1(u8())); break; // SHORT_BINSTRING
      case 0x42: stack.push(raw(u32()).slice()); break; // BINBYTES
      case 0x43: stack.push(raw(u8()).slice()); break; // SHORT_BINBYTES
      case 0x8e: stack.push(raw(u64()).slice()); break; // BINBYTES8
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x74: stack.push(popMark()); break; // TUPLE
      case 0x85: stack.push([pop()]); break; // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); stack.push([a, b]); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push([a, b, c]); break; } // TUPLE3
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x6c: stack.push(popMark()); break; // LIST
      case 0x61: { const v = pop(); append(top(), [v]); break; } // APPEND
      case 0x65: { const items = popMark(); append(top(), items); break; } // APPENDS
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x64: { const d = new Map(); setItems(d, popMark()); stack.push(d); break; } // DICT
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const items = popMark(); setItems(top(), items); break; } // SETITEMS
      case 0x8f: stack.push(new Set()); break; // EMPTY_SET
      case 0x90: { // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof Set)) fail(`pickle ADDITEMS on a value that is not a set at byte ${at}`);
        for (const x of items) (s as Set<unknown>).add(x);
        break;
      }
      case 0x91: stack.push(new Set(popMark())); break; // FROZENSET
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x70: memo.set(Number(intFrom(line())), top()); break; // PUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: case 0x6a: case 0x67: { // BINGET, LONG_BINGET, GET
        const k = op === 0x68 ? u8() : op === 0x6a ? u32() : Number(intFrom(line()));
        if (!memo.has(k)) fail(`pickle reads memo entry ${k} that was never stored (byte ${at})`);
        stack.push(memo.get(k));
        break;
      }
      case 0x63: { const module = line(); stack.push(resolve(module, line())); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail(`pickle STACK_GLOBAL without strings at byte ${at}`);
        stack.push(resolve(module as string, name as string));
        break;
      }
      case 0x52: { const args = pop(); stack.push(call(pop(), args)); break; } // REDUCE
      case 0x81: { const args = pop(); stack.push(call(pop(), args)); break; } // NEWOBJ
      case 0x62: { // BUILD
        pop(); // instance state: an OrderedDict's attributes (torch's `_metadata`), which we do not need
        const obj = top();
        if (!(obj instanceof Map)) fail(`pickle BUILD on a value that is not a dict at byte ${at}`, refuseHint);
        break;
      }
      case 0x51: stack.push(hooks.persistentLoad(pop())); break; // BINPERSID
      case 0x50: stack.push(hooks.persistentLoad(line())); break; // PERSID
      default:
        fail(`unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')} at byte ${at}`, refuseHint);
    }
  }
}
