#!/usr/bin/env python3
"""Without Maven Central the stack tests fail, and say why.

Runs tests/stack/test_stack.py with a Maven settings.xml whose only mirror is
a closed loopback port and whose local repository is empty: it must exit
non-zero, pass nothing, and name Maven Central in its output.
"""

import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import harness  # noqa: E402

SETTINGS = """<settings>
  <localRepository>%s</localRepository>
  <mirrors><mirror><id>unreachable</id><mirrorOf>*</mirrorOf>
    <url>http://127.0.0.1:%d/</url></mirror></mirrors>
</settings>
"""


def test_stack_fails_clearly_without_maven_central():
    with tempfile.TemporaryDirectory() as tmp:
        settings = os.path.join(tmp, "settings.xml")
        with open(settings, "w") as f:
            # free_port(): nothing listens there, connections are refused.
            f.write(SETTINGS % (os.path.join(tmp, "repo"), harness.free_port()))
        env = dict(os.environ, KCWATCH_STACK_MAVEN_SETTINGS=settings)
        r = subprocess.run([sys.executable, os.path.join(HERE, "test_stack.py")], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=240)
        out = r.stdout.decode("utf-8", "replace")
        print("  " + "\n  ".join(out.splitlines()[:4]))
        assert r.returncode != 0, "the stack tests passed without Maven Central:\n" + out
        assert "Maven Central" in out, "the output does not say why:\n" + out
        last = out.strip().splitlines()[-1]
        assert last.startswith("0 passed, ") and not last.endswith(" 0 failed"), last


if __name__ == "__main__":
    harness.run_tests(globals())
