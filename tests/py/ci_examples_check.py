"""Reads examples/ci's workflows with a real YAML parser (PyPI pyyaml) for tests/it/ci_examples.rs
and prints, as JSON, what a pipeline needs from each: for GitHub Actions the actions used and
whether the steps write the job summary, publish JUnit, keep results and fail on the exit
code; for GitLab the job's keys, artifact paths, JUnit reports and `when`."""
import json
import sys

import yaml

gh = yaml.safe_load(open(sys.argv[1]))
gl = yaml.safe_load(open(sys.argv[2]))

steps = [s for job in gh["jobs"].values() for s in job["steps"]]
runs = "\n".join(s.get("run", "") for s in steps)
github = {
    # PyYAML reads the bare key `on` as the boolean true (YAML 1.1).
    "triggers": sorted(gh.get("on", gh.get(True)) or {}),
    "uses": [s["uses"].split("@")[0] for s in steps if "uses" in s],
    "installs": "cargo install" in runs,
    "step_summary": "GITHUB_STEP_SUMMARY" in runs,
    "junit_paths": [s["with"]["report_paths"] for s in steps if "junit" in s.get("uses", "")],
    "always": [s["name"] for s in steps if s.get("if") == "always()"],
    "artifact_paths": [s["with"]["path"] for s in steps if "upload-artifact" in s.get("uses", "")],
}
job = gl["portlab"]
gitlab = {
    "keys": sorted(job),
    "installs": any("cargo install" in line for line in job["before_script"]),
    "script": job["script"],
    "artifacts_when": job["artifacts"]["when"],
    "artifact_paths": job["artifacts"]["paths"],
    "junit": job["artifacts"]["reports"]["junit"],
}
print(json.dumps({"github": github, "gitlab": gitlab}))
