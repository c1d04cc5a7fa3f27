// Run secvisogram's CSAF 2.0 validator over advisories: the strict schema test, every
// mandatory test (6.1) and every optional/recommended test (6.2). Prints one JSON line per
// file: {"file", "valid", "findings": [{"test", "kind", "message", "path"}]} where kind is
// "error" (a mandatory test or the schema) or "warning" (an optional test). Exit 0 always:
// the caller (tests/update_server/test_csaf_validator.py) decides.
import { readFile } from 'node:fs/promises'
import validateStrict from '@secvisogram/csaf-validator-lib/validateStrict.js'
import * as mandatory from '@secvisogram/csaf-validator-lib/mandatoryTests.js'
import * as optional from '@secvisogram/csaf-validator-lib/optionalTests.js'
import { csaf_2_0_strict } from '@secvisogram/csaf-validator-lib/schemaTests.js'

const tests = [csaf_2_0_strict, ...Object.values(mandatory), ...Object.values(optional)]
for (const file of process.argv.slice(2)) {
  const doc = JSON.parse(await readFile(file, 'utf8'))
  const result = await validateStrict(tests, doc)
  const findings = []
  for (const test of result.tests) {
    for (const kind of ['errors', 'warnings']) {
      for (const item of test[kind] ?? []) {
        findings.push({ test: test.name, kind: kind.slice(0, -1), message: item.message, path: item.instancePath })
      }
    }
  }
  console.log(JSON.stringify({ file, valid: result.isValid, tests: result.tests.length, findings }))
}
