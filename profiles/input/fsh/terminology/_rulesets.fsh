// Metadata every local CodeSystem carries (docs/design/fhir-model.md 1.2): versioned (from sushi-config),
// case-sensitive, complete content. Status comes from sushi-config (active) unless a CodeSystem
// overrides it (proposals awaiting clinical sign-off are draft).
// Release date of this version of the profiles and terminology: update with IG_VERSION. It is also
// the timestamp of the committed ValueSet expansions, which keeps the build byte-for-byte repeatable.
RuleSet: Publication
* ^publisher = "THRIVE-FHIR project"
* ^date = "2026-11-23"

RuleSet: LocalCodeSystem
* insert Publication
* ^caseSensitive = true
* ^content = #complete
* ^experimental = false

RuleSet: Synonym(code, text)
* #{code} ^designation[+].use = $sct#900000000000013009 "Synonym"
* #{code} ^designation[=].value = "{text}"

RuleSet: LocalValueSet
* insert Publication
* ^experimental = false
