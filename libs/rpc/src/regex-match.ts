import { RE2JS } from "@bufbuild/re2";

/** protovalidate's hook for the `string.pattern` and `bytes.pattern` rules and CEL `matches()`. */
export type RegexMatcher = (pattern: string, against: string) => boolean;

/**
 * A regex matcher for protovalidate that keeps its RE2 contract (a pattern that is no valid RE2 is
 * refused, and every pattern means what it means in RE2) but runs the simple patterns our protos use
 * with the platform `RegExp`: protovalidate's default, @bufbuild/re2, is RE2 written in JavaScript,
 * and matching the id patterns of a command took 1.6 % of the command service's main thread.
 *
 * "Simple" is a subset where both engines agree, and where a backtracking engine runs in linear
 * time: anchors `^` and `$` at the ends, ASCII letters, digits and `_ : -` as literals, character
 * classes of those (ranges, `.`, negation), each followed by at most one greedy quantifier
 * (`*`, `+`, `?`, `{n}`, `{n,}`, `{n,m}`). No `.` outside a class (RE2's `.` matches `\r`, the
 * platform's does not), no escapes, groups or alternation. `RegExp` runs with the `u` flag, so it
 * counts code points as RE2 does.
 */
export function createRegexMatcher(): RegexMatcher {
  const compiled = new Map<string, (against: string) => boolean>();
  return (pattern, against) => {
    let test = compiled.get(pattern);
    if (test === undefined) {
      const re2 = RE2JS.compile(pattern);
      if (runsOnPlatformRegExp(pattern)) {
        const re = new RegExp(pattern, "u");
        test = (s) => re.test(s);
      } else {
        test = (s) => re2.test(s);
      }
      if (compiled.size >= cacheLimit) compiled.clear();
      compiled.set(pattern, test);
    }
    return test(against);
  };
}

/** Whether a pattern is in the subset the platform `RegExp` runs (see createRegexMatcher). */
export function runsOnPlatformRegExp(pattern: string): boolean {
  return simplePattern.test(pattern);
}

const cacheLimit = 1024;
const classAtom = String.raw`\[\^?[A-Za-z0-9_.:-]+\]`;
const atom = `(?:[A-Za-z0-9_:-]|${classAtom})`;
const quantifier = String.raw`(?:[*+?]|\{[0-9]{1,4}(?:,[0-9]{0,4})?\})?`;
const simplePattern = new RegExp(String.raw`^\^?(?:${atom}${quantifier})*\$?$`);
