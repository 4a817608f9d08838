import { type DescField, ScalarType } from "@bufbuild/protobuf";
import { FeatureSet_FieldPresence as FieldPresence } from "@bufbuild/protobuf/wkt";

/**
 * The field shapes our hand-written protobuf encoders and sizers handle themselves (the envelope
 * writer of `@ctx/event-store`, the story limits of `@ctx/domain`): a plain string, a list of
 * strings, or an enum, each outside a oneof and with implicit presence. A message with any other
 * field goes through protobuf-es.
 */
export type PlainFieldKind = "string" | "strings" | "enum";

/** The field's plain shape, or undefined when it has another (see PlainFieldKind). */
export function plainFieldKind(field: DescField): PlainFieldKind | undefined {
  if (field.oneof !== undefined) return undefined;
  switch (field.fieldKind) {
    case "scalar":
      return field.scalar === ScalarType.STRING && field.presence === FieldPresence.IMPLICIT
        ? "string"
        : undefined;
    case "enum":
      return field.presence === FieldPresence.IMPLICIT ? "enum" : undefined;
    case "list":
      return field.listKind === "scalar" && field.scalar === ScalarType.STRING
        ? "strings"
        : undefined;
    default:
      return undefined;
  }
}

/** Bytes of a non-negative whole number written as a protobuf varint. */
export function varintSize(value: number): number {
  let size = 1;
  while (value > 0x7f) {
    value = Math.floor(value / 0x80);
    size++;
  }
  return size;
}
