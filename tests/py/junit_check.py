"""Validates a JUnit XML file for tests/it/junit.rs: against tests/fixtures/junit/junit.xsd with
xmlschema (PyPI), then parsed by junitparser (PyPI) as a CI server would read it. Prints one
JSON document: per suite its name, tests, failures, properties, system-out, and per case its
name and result (passed / failure message / skipped / error)."""
import json
import sys
import xml.etree.ElementTree as ET

import junitparser
import xmlschema

xsd, xml = sys.argv[1], sys.argv[2]
xmlschema.XMLSchema(xsd).validate(xml)  # raises with the first violation

doc = junitparser.JUnitXml.fromfile(xml)
# junitparser does not expose a suite's own <system-out>; xml.etree reads it.
outs = [s.findtext("system-out") for s in ET.parse(xml).getroot().iter("testsuite")]
suites = []
for suite, out in zip(doc, outs):
    cases = []
    for case in suite:
        result = "passed"
        for r in case.result:
            if isinstance(r, junitparser.Failure):
                result = "failure: " + (r.message or "")
            elif isinstance(r, junitparser.Skipped):
                result = "skipped: " + (r.message or "")
            elif isinstance(r, junitparser.Error):
                result = "error: " + (r.message or "")
        cases.append({"name": case.name, "classname": case.classname, "result": result})
    suites.append(
        {
            "name": suite.name,
            "tests": suite.tests,
            "failures": suite.failures,
            "errors": suite.errors,
            "properties": {p.name: p.value for p in suite.properties()},
            "system_out": out,
            "cases": cases,
        }
    )
print(json.dumps(suites))
