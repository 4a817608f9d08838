#!/usr/bin/env python3
"""Verifies the Context Service's history from the bytes it stores, without its code.

With --story, it asks the query service for one story's messages exactly as the stream stores them
(context.v1.ContextQueryService/ListStoredEvents) and recomputes every link of its hash chain. With
--all, it reads the whole event stream and its signed checkpoints (context.v1.ContextAuditService,
the `auditor` role) and checks every story's chain and every checkpoint: the stream hash at the
checkpoint's position and, with --keys, its HMAC-SHA256 signature. With --event-keys, each signed
event's signature (its Ctx-Signature header) is checked too. The rules are docs/AUDIT.md's.
Connect's JSON protocol over HTTP; Python's standard library only: no generated code, no protobuf
package.

    verify_chain.py --url URL (--story S | --all [--keys DIR]) [--event-keys DIR] [--token T] [--json]

The token comes from --token or CTX_TOKEN. --keys and --event-keys are folders of keys as `ctx audit
keygen` writes them (a file per key: its name the key id, its content the secret). Exit codes: 0
intact, 1 a break (each is printed), 2 a usage, network or service error.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import urllib.error
import urllib.request

STORED_EVENTS = "/context.v1.ContextQueryService/ListStoredEvents"
STREAM_MESSAGES = "/context.v1.ContextAuditService/ListStreamMessages"
CHECKPOINTS = "/context.v1.ContextAuditService/ListAuditCheckpoints"
# Field numbers of context.v1.ContextEvent (proto/context/v1/events.proto): envelope version 1.
STORY_ID, VERSION, PREV_HASH, HASH, EVENTS_SET_ASIDE = 2, 3, 11, 12, 27
# context.v1.StoredContextEvent: envelope version 2, told apart by its first byte (field 1, a
# varint); it keeps no story id (the subject's) and no previous hash (the previous event's hash).
V2_ENVELOPE_VERSION, V2_VERSION, V2_HASH = 1, 2, 15
# A version 2 hash is SHA-256 truncated to its first 16 bytes (docs/AUDIT.md, "Envelope version 2").
V2_HASH_BYTES = 16
# context.v1.EventsSetAside.set_aside, and context.v1.SetAsideMessage's sequence and sha256.
SET_ASIDE, SEQUENCE, SHA256 = 3, 1, 2
# context.v1.AuditCheckpoint.
CP_LAST_SEQUENCE, CP_MESSAGES, CP_STREAM_HASH, CP_SIGNED_AT, CP_KEY_ID, CP_SIGNATURE = 2, 3, 4, 5, 6, 7


class Malformed(Exception):
    pass


def varint(data, at):
    value, shift = 0, 0
    while True:
        if at >= len(data) or shift > 63:
            raise Malformed("varint cut short")
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if byte < 0x80:
            return value, at
        shift += 7


def fields(data):
    """Every field of a protobuf message: (number, wire type, value, start, end) in wire order."""
    at = 0
    while at < len(data):
        start = at
        tag, at = varint(data, at)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise Malformed("field number 0")
        if wire == 0:
            value, at = varint(data, at)
        elif wire == 1:
            value, at = data[at : at + 8], at + 8
        elif wire == 5:
            value, at = data[at : at + 4], at + 4
        elif wire == 2:
            length, at = varint(data, at)
            value, at = data[at : at + length], at + length
        else:
            raise Malformed(f"wire type {wire}")
        if at > len(data):
            raise Malformed("field cut short")
        yield number, wire, value, start, at


def without_field(data, field):
    """The message's bytes with every occurrence of one field taken out, the rest as stored."""
    return b"".join(data[start:end] for number, _, _, start, end in fields(data) if number != field)


def envelope(data):
    """story id, version, prev_hash, hash, the bytes without `hash` (None when the field is there
    twice: no rule says which was hashed), and set-aside entries. Story id and prev_hash are None
    for a version 2 envelope, which keeps neither."""
    v2 = len(data) > 0 and data[0] == 0x08
    hash_field, version_field = (V2_HASH, V2_VERSION) if v2 else (HASH, VERSION)
    story, version, prev, stored_hash, unsigned, set_aside = "", 0, b"", b"", bytearray(), []
    if v2:
        story, prev = None, None
    hashes = 0
    for number, wire, value, start, end in fields(data):
        if number == hash_field:
            stored_hash, hashes = bytes(value), hashes + 1
            continue
        unsigned += data[start:end]
        if v2 and number == V2_ENVELOPE_VERSION and (wire != 0 or value != 2):
            raise Malformed(f"envelope version {value}, which this verifier does not read")
        if not v2 and number == STORY_ID and wire == 2:
            story = bytes(value).decode("utf-8", errors="replace")
        elif number == version_field and wire == 0:
            version = value
        elif not v2 and number == PREV_HASH and wire == 2:
            prev = bytes(value)
        elif number == EVENTS_SET_ASIDE and wire == 2:
            for n, w, entry, _, _ in fields(value):
                if n == SET_ASIDE and w == 2:
                    sequence, digest = 0, b""
                    for n2, w2, v2, _, _ in fields(entry):
                        if n2 == SEQUENCE and w2 == 0:
                            sequence = v2
                        elif n2 == SHA256 and w2 == 2:
                            digest = bytes(v2)
                    set_aside.append((sequence, digest))
    return story, version, prev, stored_hash, bytes(unsigned) if hashes <= 1 else None, set_aside


class Chain:
    """One story's hash chain, fed its stored messages in stream order."""

    def __init__(self, story, event_keys=None):
        self.story, self.breaks, self.pending, self.event_keys = story, [], {}, event_keys
        self.version, self.hash, self.sequence, self.messages = 0, b"", 0, 0
        self.signed, self.signed_events, self.unsigned_events = False, 0, 0

    def add(self, sequence, data, signature="", subject=""):
        self.messages += 1

        def brk(kind, version, detail):
            return {"sequence": sequence, "story": self.story, "version": version, "kind": kind, "detail": detail}

        def pend(issue):
            # A message no reader reads: no break once an operator's EventsSetAside vouches for it.
            self.pending[sequence] = (hashlib.sha256(data).digest(), issue)

        try:
            owner, version, prev, stored_hash, unsigned, set_aside = envelope(data)
        except Malformed as e:
            return pend(brk("unreadable", 0, str(e)))
        if owner is not None and owner != self.story:
            return pend(brk("foreign-story", version, f"an envelope of story {owner!r} (version {version})"))
        if version <= self.version:
            return pend(brk("reordered", version, f"version {version} after version {self.version} (message {self.sequence})"))
        if prev is None and version > self.version + 1:
            # Version 2 keeps no previous hash: after a gap there is nothing to hash it with.
            self.breaks.append(brk("missing", version, f"versions {self.version + 1}-{version - 1} are missing"))
        elif unsigned is None or self.link_hash(prev, unsigned) != stored_hash:
            pend(brk("altered", version, "its content does not hash to its stored hash"))
        elif version > self.version + 1:
            self.breaks.append(brk("missing", version, f"versions {self.version + 1}-{version - 1} are missing"))
        elif prev is not None and prev != self.hash:
            self.breaks.append(brk("altered", version, f"version {self.version} was changed and hashed again"))
        # Whatever it is, the chain goes on from it: one change is one break.
        self.version, self.hash, self.sequence = version, stored_hash, sequence
        self.check_signature(signature, stored_hash, brk, version, subject.endswith(".EventsSetAside"))
        for entry_sequence, digest in set_aside:
            held = self.pending.get(entry_sequence)
            if held is not None and held[0] == digest:
                del self.pending[entry_sequence]

    def link_hash(self, prev, unsigned):
        """The hash the rule gives: the whole SHA-256 digest for a version 1 envelope (prev not
        None), its first 16 bytes for a version 2 one."""
        digest = hashlib.sha256(self.hashed_before(prev) + unsigned).digest()
        return digest if prev is not None else digest[:V2_HASH_BYTES]

    def hashed_before(self, prev):
        """What comes before the stored bytes in the hash: a version 1 envelope's own prev_hash; for
        a version 2 one (prev None) the chain's hash so far, then the story id as protobuf field 14
        (tag 0x72, length, UTF-8), which the subject holds and the envelope does not."""
        if prev is not None:
            return prev
        story = self.story.encode("utf-8")
        length, n = bytearray(), len(story)
        while n >= 0x80:
            length.append((n & 0x7F) | 0x80)
            n >>= 7
        length.append(n)
        return self.hash + b"\x72" + bytes(length) + story

    def check_signature(self, signature, stored_hash, brk, version, repair):
        """A signed event's Ctx-Signature must be a given key's HMAC of its hash; once a story has a
        signed event, every later one must be signed, but for a repair (EventsSetAside), which ctx
        appends and no reader takes state from."""
        if not signature:
            self.unsigned_events += 1
            if self.signed and not repair:
                self.breaks.append(brk("unsigned", version, "no signature, after signed events of the story"))
            return
        self.signed_events += 1
        self.signed = True
        if self.event_keys is None:
            return
        key_id, _, mac = signature.partition(":")
        secret = self.event_keys.get(key_id)
        if secret is None:
            self.breaks.append(brk("signature", version, f"signed with key {key_id!r}, which is not among the keys given"))
            return
        try:
            given = base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4))
        except ValueError:
            given = b""
        if not hmac.compare_digest(hmac.new(secret, stored_hash, hashlib.sha256).digest(), given):
            self.breaks.append(brk("signature", version, f"not key {key_id!r}'s HMAC of its hash"))

    def finish(self):
        return self.breaks + [issue for _, issue in self.pending.values()]


class StreamHash:
    """docs/AUDIT.md's stream hash: SHA-256 chained over (sequence, subject, bytes) of every message."""

    def __init__(self):
        self.sequence, self.messages, self.hash = 0, 0, b""

    def add(self, sequence, subject, data):
        name = subject.encode("utf-8")
        self.hash = hashlib.sha256(
            self.hash + sequence.to_bytes(8, "big") + len(name).to_bytes(4, "big") + name + data
        ).digest()
        self.sequence, self.messages = sequence, self.messages + 1


def checkpoint(stored_sequence, data, keys):
    """A stored checkpoint's fields, and a break when its signature is not one of `keys`."""
    cp = {"stored_at_sequence": stored_sequence, "last_sequence": 0, "messages": 0, "stream_hash": b"",
          "signed_at": 0, "key_id": "", "signature": b""}
    names = {CP_LAST_SEQUENCE: "last_sequence", CP_MESSAGES: "messages", CP_STREAM_HASH: "stream_hash",
             CP_KEY_ID: "key_id", CP_SIGNATURE: "signature"}
    try:
        for number, wire, value, _, _ in fields(data):
            if number in names:
                cp[names[number]] = value if wire == 0 else bytes(value)
            elif number == CP_SIGNED_AT and wire == 2:
                cp["signed_at"] = next((v for n, w, v, _, _ in fields(value) if n == 1 and w == 0), 0)
        cp["key_id"] = cp["key_id"].decode("utf-8") if isinstance(cp["key_id"], bytes) else ""
        unsigned = without_field(data, CP_SIGNATURE)
    except (Malformed, UnicodeDecodeError):
        return None, f"checkpoint stream message {stored_sequence} is not a checkpoint"
    if keys is None:
        return cp, None
    secret = keys.get(cp["key_id"])
    if secret is None:
        return cp, f"checkpoint stream message {stored_sequence} is signed with key {cp['key_id']!r}, which is not among the keys given"
    if not hmac.compare_digest(hmac.new(secret, unsigned, hashlib.sha256).digest(), cp["signature"]):
        return cp, f"checkpoint stream message {stored_sequence} does not carry a valid signature of key {cp['key_id']!r}"
    return cp, None


def call(url, method, body, token):
    request = urllib.request.Request(
        url.rstrip("/") + method,
        data=json.dumps(body).encode(),
        headers={
            "content-type": "application/json",
            "connect-protocol-version": "1",
            **({"authorization": f"Bearer {token}"} if token else {}),
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def pages(url, method, body, token, items, page_size):
    """Every item of a paged list, page by page (after_sequence ... next_after_sequence)."""
    after = 0
    while True:
        page = call(url, method, {**body, "afterSequence": str(after), **({"pageSize": page_size} if page_size else {})}, token)
        for m in page.get(items, []):
            yield int(m["sequence"]), m.get("subject", ""), base64.b64decode(m.get("data", "")), m.get("signature", "")
        after = int(page.get("nextAfterSequence", "0"))
        if after == 0:
            return


def verify_story(args, event_keys):
    chain = Chain(args.story, event_keys)
    for sequence, subject, data, signature in pages(args.url, STORED_EVENTS, {"storyId": args.story}, args.token, "messages", args.page_size):
        chain.add(sequence, data, signature, subject)
    breaks = sorted(chain.finish(), key=lambda b: b["sequence"])
    return {"story": args.story, "messages": chain.messages, "version": chain.version,
            "hash": chain.hash.hex(), "breaks": breaks,
            "event_signatures": {"signed": chain.signed_events, "unsigned": chain.unsigned_events,
                                 "checked": event_keys is not None}}


def verify_all(args, keys, event_keys):
    breaks, checkpoints = [], []
    for stored_sequence, _, data, _ in pages(args.url, CHECKPOINTS, {}, args.token, "checkpoints", args.page_size):
        cp, problem = checkpoint(stored_sequence, data, keys)
        if problem is not None:
            breaks.append({"sequence": cp["last_sequence"] if cp else 0, "story": "", "version": 0,
                           "kind": "checkpoint-signature", "detail": problem})
        else:
            checkpoints.append(cp)
    checkpoints.sort(key=lambda c: c["last_sequence"])
    chains, stream, matched, next_cp = {}, StreamHash(), 0, 0

    def settle(through):
        # Each checkpoint is compared with the stream hash once the stream is read up to its position.
        nonlocal matched, next_cp
        while next_cp < len(checkpoints) and checkpoints[next_cp]["last_sequence"] <= through:
            cp = checkpoints[next_cp]
            next_cp += 1
            last = cp["last_sequence"]
            if (stream.sequence, stream.messages, stream.hash) == (last, cp["messages"], cp["stream_hash"]):
                matched += 1
                continue
            detail = (f"the stream up to message {last} is not what the checkpoint signed: rewritten after it was signed"
                      if stream.sequence == last else
                      f"the checkpoint covers the stream up to message {last}, which the stream does not hold: messages were removed")
            breaks.append({"sequence": last, "story": "", "version": 0, "kind": "checkpoint", "detail": detail})

    for sequence, subject, data, signature in pages(args.url, STREAM_MESSAGES, {}, args.token, "messages", args.page_size):
        settle(sequence - 1)
        stream.add(sequence, subject, data)
        settle(sequence)
        tokens = subject.split(".")
        story = tokens[-2] if len(tokens) >= 4 else ""
        if not story:
            breaks.append({"sequence": sequence, "story": "", "version": 0, "kind": "unreadable",
                           "detail": f"stored on {subject}, which is not an event subject"})
            continue
        chains.setdefault(story, Chain(story, event_keys)).add(sequence, data, signature, subject)
    settle(float("inf"))
    for chain in chains.values():
        breaks.extend(chain.finish())
    breaks.sort(key=lambda b: b["sequence"])
    return {"messages": stream.messages, "stories": len(chains), "stream_hash": stream.hash.hex(),
            "checkpoints": {"found": len(checkpoints) + sum(b["kind"] == "checkpoint-signature" for b in breaks),
                            "matched": matched, "signatures_checked": keys is not None},
            "event_signatures": {"signed": sum(c.signed_events for c in chains.values()),
                                 "unsigned": sum(c.unsigned_events for c in chains.values()),
                                 "checked": event_keys is not None},
            "breaks": breaks}


def load_keys(folder):
    keys = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.startswith(".") or not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as f:
            keys[name] = f.read().strip().encode("utf-8")
    if not keys:
        raise ValueError(f"{folder} holds no key")
    return keys


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the query service, e.g. http://127.0.0.1:50052")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--story", help="one story's chain")
    which.add_argument("--all", action="store_true", help="every story of the stream, and the signed checkpoints")
    parser.add_argument("--keys", help="with --all: a folder of checkpoint keys; signatures are checked")
    parser.add_argument("--event-keys", help="a folder of event signing keys: each signed event's signature is checked")
    parser.add_argument("--token", default=os.environ.get("CTX_TOKEN", ""))
    parser.add_argument("--page-size", type=int, default=0, help="messages per request (default: the service's)")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_args()
    if args.keys and not args.all:
        parser.error("--keys goes with --all")
    try:
        keys = load_keys(args.keys) if args.keys else None
        event_keys = load_keys(args.event_keys) if args.event_keys else None
        result = verify_all(args, keys, event_keys) if args.all else verify_story(args, event_keys)
    except urllib.error.HTTPError as e:
        print(f"verify_chain: {e.code} {e.read().decode(errors='replace')}", file=sys.stderr)
        return 2
    except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
        print(f"verify_chain: {e}", file=sys.stderr)
        return 2
    breaks = result["breaks"]
    if args.json:
        print(json.dumps(result))
    else:
        for b in breaks:
            where = f"story {b['story']}, " if b["story"] else ""
            print(f"stream message {b['sequence']} ({where}version {b['version']}): {b['kind']}: {b['detail']}")
        state = "intact" if not breaks else f"{len(breaks)} break(s)"
        if args.all:
            cps = result["checkpoints"]
            signed = "signatures checked" if cps["signatures_checked"] else "signatures NOT checked (no --keys)"
            print(f"{result['stories']} stories, {result['messages']} messages; "
                  f"{cps['matched']} of {cps['found']} checkpoints match ({signed}): {state}")
        else:
            print(f"{args.story}: {result['messages']} messages, version {result['version']}, head {result['hash']}: {state}")
    return 1 if breaks else 0


if __name__ == "__main__":
    sys.exit(main())
