import {
  create,
  type DescField,
  type DescMessage,
  type MessageShape,
  ScalarType,
  toBinary,
  toJsonString,
} from "@bufbuild/protobuf";
import fc from "fast-check";

/**
 * Requests a careless or hostile client might send, grown from valid ones: each field kept, dropped
 * or replaced by an edge value of its type (ids of the real story, empty, very long, control
 * characters, numbers at their type's limits, unknown enum values, long lists), then, sometimes, the
 * encoded bytes themselves broken (bits flipped, cut short, garbage appended or inserted).
 */

/** Strings worth trying in any string field, beside the seed's own values. */
const edgeStrings: readonly string[] = [
  "",
  " ",
  "a",
  "-leading-dash",
  "../../etc/passwd",
  "story\u0000nul",
  "tab\tand\nnewline",
  "ünïcödé-ïd",
  "😀",
  "\uD800",
  "*",
  ">",
  "a.b.c",
  "$JS.API.STREAM.DELETE.X",
  "{{template}}",
  "' OR 1=1 --",
  "MATCH (n) DETACH DELETE n",
  "x".repeat(64),
  "x".repeat(65),
  "y".repeat(201),
  "z".repeat(10_001),
];

function stringArb(seeds: readonly string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...(seeds.length > 0 ? seeds : ["s"])) },
    { weight: 3, arbitrary: fc.constantFrom(...edgeStrings) },
    { weight: 2, arbitrary: fc.string({ maxLength: 80 }) },
    { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 40 }) },
    { weight: 1, arbitrary: fc.string({ minLength: 1_000, maxLength: 70_000 }) },
  );
}

const uint32 = fc.oneof(
  fc.constantFrom(0, 1, 2, 3, 100, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1),
  fc.nat({ max: 2 ** 32 - 1 }),
);
const int32 = fc.oneof(fc.constantFrom(0, -1, 1, -(2 ** 31), 2 ** 31 - 1), fc.integer());
const uint64 = fc.oneof(
  fc.constantFrom(0n, 1n, 2n ** 63n, 2n ** 64n - 1n),
  fc.bigInt(0n, 2n ** 64n - 1n),
);
const int64 = fc.oneof(
  fc.constantFrom(0n, -1n, -(2n ** 63n), 2n ** 63n - 1n, 253402300800n, -62135596801n),
  fc.bigInt(-(2n ** 63n), 2n ** 63n - 1n),
);

function scalarArb(type: ScalarType, seeds: readonly string[]): fc.Arbitrary<unknown> {
  switch (type) {
    case ScalarType.STRING:
      return stringArb(seeds);
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: 64 });
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return uint32;
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return int32;
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return uint64;
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return int64;
    case ScalarType.FLOAT:
    case ScalarType.DOUBLE:
      return fc.double();
  }
}

/** A value for one field (its list or map form for repeated fields). */
function fieldArb(
  field: DescField,
  seeds: readonly string[],
  depth: number,
): fc.Arbitrary<unknown> {
  const single = (): fc.Arbitrary<unknown> => {
    switch (field.fieldKind) {
      case "scalar":
        return scalarArb(field.scalar, seeds);
      case "enum":
        return fc.oneof(
          fc.constantFrom(...field.enum.values.map((v) => v.number)),
          fc.integer({ min: -3, max: 40 }),
        );
      case "message":
        return messageArb(field.message, seeds, depth + 1);
      case "list":
        return fc.array(
          field.listKind === "scalar"
            ? scalarArb(field.scalar, seeds)
            : field.listKind === "enum"
              ? fc.integer({ min: -3, max: 40 })
              : messageArb(field.message, seeds, depth + 1),
          { maxLength: 600, size: "small" },
        );
      case "map":
        return fc.constant({});
    }
  };
  return single();
}

/** Any message of a type, its fields filled (or left out) at random, nested at most two deep. */
export function messageArb(
  desc: DescMessage,
  seeds: readonly string[],
  depth = 0,
): fc.Arbitrary<MessageShape<DescMessage>> {
  if (depth > 2) return fc.constant(create(desc));
  const parts: Record<string, fc.Arbitrary<unknown>> = {};
  for (const field of desc.fields) {
    if (field.oneof) continue;
    parts[field.localName] = fieldArb(field, seeds, depth);
  }
  const oneofs = desc.oneofs.map((oneof) =>
    fc.option(
      fc.constantFrom(...oneof.fields).chain((f) =>
        fieldArb(f, seeds, depth).map((value) => ({
          name: oneof.localName,
          case: f.localName,
          value,
        })),
      ),
    ),
  );
  return fc
    .tuple(fc.record(parts, { requiredKeys: [] }), fc.tuple(...oneofs))
    .map(([fields, chosen]) => {
      const init: Record<string, unknown> = { ...fields };
      for (const c of chosen) if (c) init[c.name] = { case: c.case, value: c.value };
      return create(desc, init as never);
    });
}

/** A valid message with some of its fields replaced by values from messageArb. */
export function mutatedArb(
  desc: DescMessage,
  valid: MessageShape<DescMessage>,
  seeds: readonly string[],
): fc.Arbitrary<MessageShape<DescMessage>> {
  return fc
    .tuple(messageArb(desc, seeds), fc.subarray(desc.fields.map((f) => f.localName)))
    .map(([random, replaced]) => {
      const out = create(desc, valid as never) as Record<string, unknown>;
      const from = random as Record<string, unknown>;
      for (const name of replaced) {
        const field = desc.fields.find((f) => f.localName === name);
        const key = field?.oneof ? field.oneof.localName : name;
        out[key] = from[key];
      }
      return out as MessageShape<DescMessage>;
    });
}

/** Ways to break encoded bytes. */
export type ByteMutation =
  | { readonly kind: "flip"; readonly at: number; readonly bit: number }
  | { readonly kind: "cut"; readonly at: number }
  | { readonly kind: "insert"; readonly at: number; readonly bytes: Uint8Array }
  | { readonly kind: "append"; readonly bytes: Uint8Array };

export const byteMutationArb: fc.Arbitrary<ByteMutation> = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.nat({ max: 7 }) }),
  fc.record({ kind: fc.constant("cut" as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant("insert" as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
  }),
  fc.record({
    kind: fc.constant("append" as const),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 32 }),
  }),
);

export function applyByteMutations(
  bytes: Uint8Array,
  mutations: readonly ByteMutation[],
): Uint8Array {
  let out = Uint8Array.from(bytes);
  for (const m of mutations) {
    const at = out.length === 0 ? 0 : "at" in m ? m.at % (out.length + 1) : 0;
    switch (m.kind) {
      case "flip":
        if (out.length > 0) out[at % out.length] = (out[at % out.length] as number) ^ (1 << m.bit);
        break;
      case "cut":
        out = out.subarray(0, at);
        break;
      case "insert":
        out = Uint8Array.from([...out.subarray(0, at), ...m.bytes, ...out.subarray(at)]);
        break;
      case "append":
        out = Uint8Array.from([...out, ...m.bytes]);
        break;
    }
  }
  return out;
}

/**
 * The message's bytes as a client of the protocol sends them: protobuf, or JSON text. A message the
 * JSON form cannot express (a timestamp beyond year 9999) is sent as what a careless client would
 * write instead: its fields as plain JSON.
 */
export function encode(
  desc: DescMessage,
  message: MessageShape<DescMessage>,
  json: boolean,
): Uint8Array {
  if (!json) return toBinary(desc, message);
  let text: string;
  try {
    text = toJsonString(desc, message);
  } catch {
    text = JSON.stringify(message, (key, value: unknown) =>
      key === "$typeName" ? undefined : typeof value === "bigint" ? value.toString() : value,
    );
  }
  return new TextEncoder().encode(text);
}
