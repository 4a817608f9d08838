import { createHmac, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { checkEventSignature, eventSignature, eventSigner } from "./event-signing.ts";

describe("event signatures", () => {
  it("are RFC 2104 HMAC-SHA256 of the hash, for keys shorter and longer than a block", () => {
    for (const secretLength of [32, 43, 64, 65, 200]) {
      const key = { id: "k-1", secret: randomBytes(secretLength) };
      const sign = eventSigner(key);
      for (let i = 0; i < 50; i++) {
        const hash = randomBytes(i % 5 === 0 ? 17 : 32);
        const expected = createHmac("sha256", key.secret).update(hash).digest("base64url");
        expect(sign(hash)).toBe(`k-1:${expected}`);
        expect(sign(hash)).toBe(eventSignature(key, hash));
      }
    }
  });

  it("verify with the key they name, and nothing else", () => {
    const key = { id: "k-1", secret: randomBytes(32) };
    const keys = new Map([["k-1", key.secret]]);
    const hash = randomBytes(32);
    const signature = eventSigner(key)(hash);
    expect(checkEventSignature(signature, hash, keys).verdict).toBe("valid");
    expect(checkEventSignature(signature, randomBytes(32), keys).verdict).toBe("invalid");
    expect(checkEventSignature(signature.replace("k-1:", "k-2:"), hash, keys)).toEqual({
      verdict: "unknown-key",
      keyId: "k-2",
    });
    expect(checkEventSignature("no colon", hash, keys).verdict).toBe("invalid");
    expect(checkEventSignature("k-1:", hash, keys).verdict).toBe("invalid");
  });
});
