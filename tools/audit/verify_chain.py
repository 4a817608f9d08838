#!/usr/bin/env python3
"""Verifies a story's hash chain from the bytes the Context Service stores, without its code.

It asks the query service for the story's messages exactly as the stream stores them
(context.v1.ContextQueryService/ListStoredEvents, Connect's JSON protocol over HTTP) and recomputes
every link with the rule of docs/AUDIT.md: an event's hash is SHA-256 over the previous event's
hash followed by the event's stored bytes with field 12 (`hash`) taken out. Python's standard
library only: no generated code, no protobuf package.

    verify_chain.py --url http://127.0.0.1:50052 --story S [--token T] [--json]

The token comes from --token or CTX_TOKEN. Exit codes: 0 the chain is intact, 1 a break (each is
printed), 2 a usage, network or service error.
"""

import argparse
import base64
import hashlib
import json
import os
import sys
import urllib.error
import urllib.request

METHOD = "/context.v1.ContextQueryService/ListStoredEvents"
# Field numbers of context.v1.ContextEvent (proto/context/v1/events.proto).
STORY_ID, VERSION, PREV_HASH, HASH, EVENTS_SET_ASIDE = 2, 3, 11, 12, 27
# context.v1.EventsSetAside.set_aside, and context.v1.SetAsideMessage's sequence and sha256.
SET_ASIDE, SEQUENCE, SHA256 = 3, 1, 2


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


def envelope(data):
    """story id, version, prev_hash, hash, the bytes without `hash`, and set-aside entries."""
    story, version, prev, stored_hash, unsigned, set_aside = "", 0, b"", b"", bytearray(), []
    for number, wire, value, start, end in fields(data):
        if number == HASH:
            stored_hash = bytes(value)
            continue
        unsigned += data[start:end]
        if number == STORY_ID and wire == 2:
            story = bytes(value).decode("utf-8", errors="replace")
        elif number == VERSION and wire == 0:
            version = value
        elif number == PREV_HASH and wire == 2:
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
    return story, version, prev, stored_hash, bytes(unsigned), set_aside


def verify(story, messages):
    """The breaks of a story's chain, and its head (version, hash), from its stored messages."""
    breaks, pending = [], {}
    head_version, head_hash, head_sequence = 0, b"", 0
    for sequence, data in messages:
        def brk(kind, version, detail):
            return {"sequence": sequence, "version": version, "kind": kind, "detail": detail}

        try:
            owner, version, prev, stored_hash, unsigned, set_aside = envelope(data)
        except Malformed as e:
            pending[sequence] = (hashlib.sha256(data).digest(), brk("unreadable", 0, str(e)))
            continue
        if owner != story:
            detail = f"an envelope of story {owner!r} (version {version})"
            pending[sequence] = (hashlib.sha256(data).digest(), brk("foreign-story", version, detail))
            continue
        if version <= head_version:
            detail = f"version {version} after version {head_version} (message {head_sequence})"
            pending[sequence] = (hashlib.sha256(data).digest(), brk("reordered", version, detail))
            continue
        if hashlib.sha256(prev + unsigned).digest() != stored_hash:
            # No reader reads it either; an operator's EventsSetAside may vouch for it.
            detail = "its content does not hash to its stored hash"
            pending[sequence] = (hashlib.sha256(data).digest(), brk("altered", version, detail))
        elif version > head_version + 1:
            breaks.append(brk("missing", version, f"versions {head_version + 1}-{version - 1} are missing"))
        elif prev != head_hash:
            breaks.append(brk("altered", version, f"version {head_version} was changed and hashed again"))
        head_version, head_hash, head_sequence = version, stored_hash, sequence
        for entry_sequence, digest in set_aside:
            held = pending.get(entry_sequence)
            if held is not None and held[0] == digest:
                del pending[entry_sequence]
    breaks.extend(issue for _, issue in pending.values())
    breaks.sort(key=lambda b: b["sequence"])
    return breaks, head_version, head_hash


def stored_messages(url, story, token, page_size):
    """Every message of the story's subjects, as stored, page by page."""
    after = 0
    while True:
        body = {"storyId": story, "afterSequence": str(after)}
        if page_size:
            body["pageSize"] = page_size
        request = urllib.request.Request(
            url.rstrip("/") + METHOD,
            data=json.dumps(body).encode(),
            headers={
                "content-type": "application/json",
                "connect-protocol-version": "1",
                **({"authorization": f"Bearer {token}"} if token else {}),
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            page = json.load(response)
        for m in page.get("messages", []):
            yield int(m["sequence"]), base64.b64decode(m.get("data", ""))
        after = int(page.get("nextAfterSequence", "0"))
        if after == 0:
            return


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the query service, e.g. http://127.0.0.1:50052")
    parser.add_argument("--story", required=True)
    parser.add_argument("--token", default=os.environ.get("CTX_TOKEN", ""))
    parser.add_argument("--page-size", type=int, default=0, help="messages per request (default: the service's)")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_args()
    try:
        messages = list(stored_messages(args.url, args.story, args.token, args.page_size))
    except urllib.error.HTTPError as e:
        print(f"verify_chain: {e.code} {e.read().decode(errors='replace')}", file=sys.stderr)
        return 2
    except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
        print(f"verify_chain: {e}", file=sys.stderr)
        return 2
    breaks, version, head = verify(args.story, messages)
    if args.json:
        print(json.dumps({"story": args.story, "messages": len(messages), "version": version,
                          "hash": head.hex(), "breaks": breaks}))
    else:
        for b in breaks:
            print(f"stream message {b['sequence']} (version {b['version']}): {b['kind']}: {b['detail']}")
        state = "intact" if not breaks else f"{len(breaks)} break(s)"
        print(f"{args.story}: {len(messages)} messages, version {version}, head {head.hex()}: {state}")
    return 1 if breaks else 0


if __name__ == "__main__":
    sys.exit(main())
