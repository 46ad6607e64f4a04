// Validates every object of rendered Kubernetes manifests against its API schema.
//
// Two checks per object, both must pass:
//  1. the JSON schema of its apiVersion/kind, from the npm models (kubernetes-models for the
//     built-in API, @kubernetes-models/{keda,prometheus-operator,external-secrets,cert-manager}
//     for the CRDs): types, required fields, enums, formats;
//  2. no unknown field anywhere: the models' schemas let unknown properties through, and the API
//     server would drop them silently (a misspelt "readinesProbe" would just vanish), so every
//     key is looked up in the models' TypeScript declarations with the TypeScript checker.
// An object whose apiVersion/kind has no model fails: nothing goes unvalidated.
//
// Usage: node validate.mjs FILE.yaml...   Exit 0 when every object passes; prints each error
// as "FILE: Kind/namespace/name: path: message".
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import ts from "typescript";

const here = path.dirname(fileURLToPath(import.meta.url));

// apiVersion group -> npm package holding its models.
const packages = {
  "": "kubernetes-models",
  "keda.sh": "@kubernetes-models/keda",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
  "external-secrets.io": "@kubernetes-models/external-secrets",
  "cert-manager.io": "@kubernetes-models/cert-manager",
};

function modulePath(apiVersion) {
  const slash = apiVersion.indexOf("/");
  const group = slash < 0 ? "" : apiVersion.slice(0, slash);
  const version = slash < 0 ? apiVersion : apiVersion.slice(slash + 1);
  const pkg = packages[group] ?? (group.includes(".") && !group.endsWith(".k8s.io") ? null : "kubernetes-models");
  if (pkg === null) return null;
  return group === "" ? `${pkg}/${version}` : `${pkg}/${group}/${version}`;
}

// ---- check 2: unknown fields, through the TypeScript declarations of the models ----

function makeChecker(pairs) {
  // One virtual module importing every interface we need: I<Kind> from its model module.
  const lines = pairs.map(([mod, kind], i) => `import type { I${kind} as T${i} } from "${mod}/${kind}";\nexport declare const v${i}: T${i};`);
  const file = path.join(here, "__models__.ts");
  const source = lines.join("\n");
  const options = {
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const readFile = host.readFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  host.readFile = (f) => (path.resolve(f) === file ? source : readFile(f));
  host.fileExists = (f) => path.resolve(f) === file || fileExists(f);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (f, lang) =>
    path.resolve(f) === file ? ts.createSourceFile(f, source, lang) : getSourceFile(f, lang);
  const program = ts.createProgram([file], options, host);
  const diags = ts.getPreEmitDiagnostics(program).filter((d) => d.file && path.resolve(d.file.fileName) === file);
  const checker = program.getTypeChecker();
  const sf = program.getSourceFile(file);
  const types = new Map();
  const missing = new Set();
  for (const d of diags) {
    const line = sf.getLineAndCharacterOfPosition(d.start).line;
    missing.add(Math.floor(line / 2));
  }
  let i = 0;
  for (const stmt of sf.statements) {
    if (!ts.isVariableStatement(stmt)) continue;
    const decl = stmt.declarationList.declarations[0];
    if (!missing.has(i)) types.set(pairs[i].join("#"), checker.getTypeAtLocation(decl.name));
    i++;
  }
  return { checker, types };
}

function nonNullable(checker, type) {
  if (!type.isUnion()) return [type];
  return type.types.filter((t) => !(t.flags & (ts.TypeFlags.Undefined | ts.TypeFlags.Null)));
}

function unknownFields(checker, type, value, where, errors) {
  if (value === null || typeof value !== "object") return;
  const candidates = nonNullable(checker, type);
  if (candidates.some((t) => t.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown))) return;
  if (Array.isArray(value)) {
    const arr = candidates.find((t) => checker.isArrayType(t) || checker.isTupleType(t));
    if (!arr) return; // a type error, reported by the JSON schema check
    const elem = checker.getTypeArguments(arr)[0];
    value.forEach((v, i) => unknownFields(checker, elem, v, `${where}[${i}]`, errors));
    return;
  }
  const objects = candidates.filter((t) => t.flags & ts.TypeFlags.Object && !checker.isArrayType(t));
  if (objects.length === 0) return;
  for (const [key, v] of Object.entries(value)) {
    let propType = null;
    for (const t of objects) {
      const prop = checker.getPropertyOfType(t, key);
      if (prop) {
        propType = checker.getTypeOfSymbol(prop);
        break;
      }
      const index = checker.getIndexTypeOfType(t, ts.IndexKind.String);
      if (index) {
        propType = index;
        break;
      }
    }
    if (propType === null) {
      errors.push(`${where}.${key}: unknown field`);
      continue;
    }
    unknownFields(checker, propType, v, `${where}.${key}`, errors);
  }
}

// ---- main ----

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node validate.mjs FILE.yaml...");
  process.exit(2);
}
const objects = [];
for (const file of files) {
  for (const doc of parseAllDocuments(fs.readFileSync(file, "utf8"))) {
    if (doc.errors.length) {
      console.error(`${file}: YAML: ${doc.errors[0].message}`);
      process.exit(1);
    }
    const obj = doc.toJS();
    if (obj) objects.push({ file, obj });
  }
}

const failures = [];
const pairs = [];
const seen = new Set();
for (const { file, obj } of objects) {
  const id = `${obj.kind}/${obj.metadata?.namespace ?? "-"}/${obj.metadata?.name}`;
  const mod = typeof obj.apiVersion === "string" ? modulePath(obj.apiVersion) : null;
  if (!mod) {
    failures.push(`${file}: ${id}: no schema for apiVersion ${obj.apiVersion}`);
    continue;
  }
  let model;
  try {
    model = (await import(mod))[obj.kind];
  } catch (e) {
    model = undefined;
  }
  if (typeof model !== "function") {
    failures.push(`${file}: ${id}: no schema for ${obj.apiVersion} ${obj.kind}`);
    continue;
  }
  try {
    new model(obj).validate();
  } catch (e) {
    const details = (e.errors ?? []).map((x) => `${x.instancePath || "/"} ${x.message}`);
    failures.push(`${file}: ${id}: schema: ${details.join("; ") || e.message}`);
  }
  const key = `${mod}#${obj.kind}`;
  if (!seen.has(key)) {
    seen.add(key);
    pairs.push([mod, obj.kind]);
  }
}

const { checker, types } = makeChecker(pairs);
for (const { file, obj } of objects) {
  const id = `${obj.kind}/${obj.metadata?.namespace ?? "-"}/${obj.metadata?.name}`;
  const mod = modulePath(obj.apiVersion ?? "");
  const type = mod && types.get(`${mod}#${obj.kind}`);
  if (!type) {
    if (mod) failures.push(`${file}: ${id}: no type declaration for the unknown-field check`);
    continue;
  }
  const errors = [];
  unknownFields(checker, type, obj, "", errors);
  for (const e of errors) failures.push(`${file}: ${id}: ${e}`);
}

for (const f of failures) console.error(f);
console.log(`validate.mjs: ${objects.length} objects in ${files.length} files, ${failures.length} errors`);
process.exit(failures.length ? 1 : 0);
