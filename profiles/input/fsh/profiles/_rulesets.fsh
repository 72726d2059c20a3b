// UK Core decision (see profiles/README.md): UK Core packages cannot be loaded on the build machines,
// so every profile derives from the R4 base resource, reproduces the UK Core constraints that matter
// here (none of ours conflicts with UK Core), and records its intended UK Core parent with the
// structuredefinition-imposeProfile extension, so a validator that has UK Core checks both.
RuleSet: ThriveProfile
* ^status = #active
* ^experimental = false
* ^publisher = "THRIVE-FHIR project"
* ^date = "2026-11-23"

RuleSet: ImposeUKCore(ukcore)
* ^extension[0].url = $ext-impose-profile
* ^extension[0].valueCanonical = {ukcore}

// Business identifier on every resource the app creates (docs/design/fhir-model.md section 4).
RuleSet: BusinessIdentifier
* identifier 1..* MS
* identifier.system 1..1 MS
* identifier.value 1..1 MS
