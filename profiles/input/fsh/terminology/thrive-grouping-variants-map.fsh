// Received grouping labels -> canonical grouping code (docs/design/fhir-model.md 1.3). Anything not listed, and
// the quadrant numbers (see thrive-grouping-variants.fsh), is unmatched: rejected, never guessed.
RuleSet: VariantMap(source, target, display, equivalence)
* group[0].element[+].code = #{source}
* group[0].element[=].target[0].code = #{target}
* group[0].element[=].target[0].display = "{display}"
* group[0].element[=].target[0].equivalence = #{equivalence}

RuleSet: QuadrantUnmatched(source)
* group[0].element[+].code = #{source}
* group[0].element[=].target[0].equivalence = #unmatched
* group[0].element[=].target[0].comment = "Ambiguous: the THRIVE Framework gives no numbering for the older four quadrants, and five-grouping sites number Thriving first. Older four-quadrant diagrams are usually read Getting Advice, Getting Help, Getting More Help, Getting Risk Support, but that order needs confirming with the sending site before any data is translated."

Instance: thrive-grouping-variants
InstanceOf: ConceptMap
Usage: #definition
Title: "THRIVE grouping labels to THRIVE groupings"
Description: "Maps normalised grouping labels as received (thrive-grouping-variants) to the canonical THRIVE grouping codes. Labels not listed, and the ambiguous four-quadrant numbers, are unmatched and must be rejected, never guessed. Store only the canonical code; keep the received wording in CodeableConcept.text."
* name = "ThriveGroupingVariantsMap"
* status = #active
* version = "0.1.0"
* publisher = "THRIVE-FHIR project"
* date = "2026-11-23"
* experimental = false
* targetCanonical = Canonical(ThriveGroupingVS)
* group[0].source = Canonical(ThriveGroupingVariants)
* group[0].target = Canonical(ThriveGrouping)
* insert VariantMap(thriving, thriving, Thriving, equal)
* insert VariantMap(getting-advice-and-signposting, getting-advice, Getting Advice and Signposting, equal)
* insert VariantMap(getting-advice-signposting, getting-advice, Getting Advice and Signposting, equal)
* insert VariantMap(getting-advice, getting-advice, Getting Advice and Signposting, equivalent)
* insert VariantMap(coping, getting-advice, Getting Advice and Signposting, equivalent)
* insert VariantMap(getting-help, getting-help, Getting Help, equal)
* insert VariantMap(getting-more-help, getting-more-help, Getting More Help, equal)
* insert VariantMap(getting-additional-help, getting-more-help, Getting More Help, equivalent)
* group[0].element[=].target[0].comment = "Inferred from the youth justice KPI 4 category set (Getting Advice, Getting Help, Getting Additional Help, Getting Risk Support); confirm with local youth justice services."
* insert VariantMap(getting-risk-support, getting-risk-support, Getting Risk Support, equal)
* insert QuadrantUnmatched(quadrant-1)
* insert QuadrantUnmatched(quadrant-2)
* insert QuadrantUnmatched(quadrant-3)
* insert QuadrantUnmatched(quadrant-4)
