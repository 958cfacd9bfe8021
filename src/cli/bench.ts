// `microgate bench`: the paper's experiment, microgate against Linux side by
// side. Parses the options, runs the plan (src/bench/runner.ts), writes
// bench.json, report.md and the SVG charts into --out, prints the ratio table.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { allowedCpus } from '../bench/affinity.ts';
import { charts } from '../bench/charts.ts';
import { machineInfo, missingTools } from '../bench/machine.ts';
import { BENCH_HELP, BenchUsageError, parseBenchArgs } from '../bench/options.ts';
import { makePlan, plannedSeconds } from '../bench/plan.ts';
import { formatDuration, Progress } from '../bench/progress.ts';
import { markdownReport, ratioTable } from '../bench/report.ts';
import { aggregate } from '../bench/results.ts';
import { runPlan } from '../bench/runner.ts';

export { BENCH_HELP };

function timestamp(d: Date): string {
  return d.toISOString().slice(0, 19).replace(/[-:]/g, '').replace('T', '-');
}

export async function benchCommand(argv: string[]): Promise<number> {
  const cpus = allowedCpus();
  let parsed;
  try {
    parsed = parseBenchArgs(argv, cpus.length);
  } catch (e) {
    if (e instanceof BenchUsageError) {
      process.stderr.write(`microgate bench: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  if (parsed.help) {
    process.stdout.write(`${BENCH_HELP}\n`);
    return 0;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('microgate bench: must run as root (it builds network namespaces and starts microgate)\n');
    return 1;
  }
  const o = parsed.options;
  const missing = missingTools(o.tests.includes('latency'), o.tests.includes('small'));
  if (missing !== undefined) {
    process.stderr.write(`microgate bench: ${missing}\n`);
    return 1;
  }

  const plan = makePlan(o, Math.max(...o.cores));
  const started = new Date();
  const outDir = resolve(parsed.out ?? join('results', `bench-${timestamp(started)}`));
  mkdirSync(outDir, { recursive: true });
  const planned = plannedSeconds(plan);
  const progress = new Progress(planned, { quiet: parsed.quiet });
  progress.log(`microgate bench: ${plan.configs.length} configurations (${plan.configs.map((c) => c.label).join('; ')}), ${plan.tests.length} figures x ${o.repeat} = ${plan.runs.length} runs, about ${formatDuration(planned + plan.labs.size * 2)}; output in ${outDir}`);

  const ac = new AbortController();
  let interrupts = 0;
  const onSignal = (): void => {
    interrupts++;
    if (interrupts === 1) {
      progress.log('interrupted: stopping after this run and removing the labs (again to quit at once)');
      ac.abort();
    } else {
      process.stderr.write('microgate bench: quitting; labs may be left: see "microgate lab status"\n');
      process.exit(130);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let output;
  try {
    output = await runPlan(plan, { progress, signal: ac.signal });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  const result = aggregate({
    plan,
    options: o,
    runs: output.runs,
    labs: output.labs,
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    command: ['npx microgate bench', ...argv].join(' '),
    machine: machineInfo(cpus.length),
    trace: Object.keys(output.traces).length ? output.traces : null,
    traceNote: output.traceNote,
    interrupted: output.aborted,
  });
  const svgs = charts(result);
  for (const [name, svg] of svgs) writeFileSync(join(outDir, name), svg);
  const json = `${JSON.stringify(result, null, 2)}\n`;
  writeFileSync(join(outDir, 'bench.json'), json);
  writeFileSync(join(outDir, 'report.md'), markdownReport(result, { charts: [...svgs.keys()] }));
  const table = ratioTable(result, { spread: o.repeat > 1 });
  writeFileSync(join(outDir, 'table.txt'), `${table}\n`);

  if (parsed.json) {
    process.stdout.write(json);
  } else {
    const goals = result.goals.map((g) => `  ${g.met === null ? '-' : g.met ? 'met' : 'NOT met'}: ${g.text} (${g.value === null ? g.detail : `${g.value.toFixed(2)}; ${g.detail}`})`);
    process.stdout.write(`\nmicrogate / Linux (Linux columns: values; median of ${o.repeat} paired run${o.repeat === 1 ? '' : 's'})\n${table}\n\n`
      + `tx_ratio ${result.tx_ratio?.toFixed(2) ?? 'n/a'}  rx_ratio ${result.rx_ratio?.toFixed(2) ?? 'n/a'}`
      + (result.tx6_ratio !== null || result.rx6_ratio !== null ? `  IPv6: tx6_ratio ${result.tx6_ratio?.toFixed(2) ?? 'n/a'}  rx6_ratio ${result.rx6_ratio?.toFixed(2) ?? 'n/a'}` : '')
      + `\n\ngoals:\n${goals.join('\n')}\n\n`
      + `wrote ${outDir}/{bench.json, report.md, table.txt, ${[...svgs.keys()].join(', ')}}\n`);
  }
  if (output.aborted) return 130;
  if (result.failures.length > 0) {
    process.stderr.write(`microgate bench: ${result.failures.length} of ${output.runs.length} runs failed (see report.md)\n`);
    return 1;
  }
  return 0;
}
