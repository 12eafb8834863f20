/* ruletest.h: `kcwatch test TEST_FILE...`, unit tests for alert rules.
 *
 * A test file (YAML, modelled on promtool's rule test files) names rule files
 * and, per test, canned Connect status snapshots and canned PromQL results
 * over time plus the alerts expected at given evaluation times. The runner
 * loads the rules as the daemon does and drives the daemon's evaluation
 * engine (engine.h) on a clock it owns: a changed snapshot is a changed poll
 * (connect: rules evaluated at once), and every group ticks at 0, interval,
 * 2*interval, ... up to the last eval_time; it then compares the firing (or pending) alerts with the expected ones: exact
 * label sets, annotations when given. The format is documented in
 * rules.d/tests/README.md. No I/O besides reading the files and writing the
 * report. */
#ifndef KCWATCH_RULETEST_H
#define KCWATCH_RULETEST_H

#include <stddef.h>
#include <stdio.h>

/* Runs the tests of every file in order and writes, per failing test, its
 * name, eval_time, alertname and expected vs got alerts to out, then one line
 * "rule tests: N passed, M failed". Files that cannot be loaded (bad YAML,
 * unknown keys, bad durations, broken rule files...) are reported as
 * FILE:LINE:COL: message and the other files still run.
 * Returns the exit code: 0 all passed, 1 a test failed, 2 a file could not be
 * loaded (2 wins over 1). */
int kcw_ruletest_run(const char *const *files, size_t n, FILE *out);

#endif
