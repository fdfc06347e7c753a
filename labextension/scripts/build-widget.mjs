/**
 * Bundle the feed widget's front end into the one ESM file anywidget loads.
 *
 * `src/feedWidget.ts` and the modules it shares with the side panel become
 * `pgmagic/_static/feed.js`. The bundle is committed, so installing pgmagic
 * needs no Node.js; `jlpm test` runs this with `--check`, which fails when
 * the committed file no longer matches the sources.
 *
 *     node scripts/build-widget.mjs           write the bundle
 *     node scripts/build-widget.mjs --check   compare, write nothing
 */

import { build } from 'esbuild';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const labextension = dirname(dirname(fileURLToPath(import.meta.url)));
const repository = dirname(labextension);
const outfile = join(repository, 'pgmagic', '_static', 'feed.js');
const shown = relative(repository, outfile);

const result = await build({
  // Paths in the bundle's comments are relative to this: same output from any cwd.
  absWorkingDir: labextension,
  entryPoints: ['src/feedWidget.ts'],
  outfile,
  bundle: true,
  format: 'esm',
  // Notebook front ends that run anywidget (JupyterLab 4, Notebook 7, VS Code).
  target: 'es2020',
  // Keep `→` and `·` readable in the committed file.
  charset: 'utf8',
  banner: {
    js:
      '// Generated from labextension/src/feedWidget.ts by ' +
      'labextension/scripts/build-widget.mjs (jlpm build:widget): do not edit.'
  },
  write: false,
  logLevel: 'warning'
});
const bundle = result.outputFiles[0].text;

if (process.argv.includes('--check')) {
  const committed = await readFile(outfile, 'utf8').catch(() => null);
  if (committed !== bundle) {
    console.error(
      `${shown} does not match labextension/src: run \`jlpm build:widget\` and commit it.`
    );
    process.exit(1);
  }
  console.log(`${shown} is up to date.`);
} else {
  await writeFile(outfile, bundle);
  console.log(`wrote ${shown}`);
}
