// One Provenance per clinician save (docs/design/fhir-model.md section 4). Intended parent: UKCore-Provenance.
// Provenance has no identifier in R4: its id is UUIDv5 of {base}/Id/provenance|<outbox row id>.
Profile: ThriveProvenance
Parent: Provenance
Id: thrive-provenance
Title: "THRIVE provenance"
Description: "Who saved which THRIVE resources, when, on whose behalf, and with which young person and parent taking part."
* insert ThriveProfile
* insert ImposeUKCore($UKCore-Provenance)
* obeys thr-prov-1 and thr-prov-2
* target MS
* recorded MS
* activity 1..1 MS
* agent MS
* agent ^slicing.discriminator.type = #pattern
* agent ^slicing.discriminator.path = "type"
* agent ^slicing.rules = #open
* agent contains author 1..1 MS and assembler 0..1 MS and informant 0..* MS
* agent[author].type 1..1
* agent[author].type = $provenance-participant-type#author
* agent[author].who only Reference(Practitioner or PractitionerRole)
* agent[author].onBehalfOf 1..1 MS
* agent[author].onBehalfOf only Reference(Organization)
* agent[assembler].type 1..1
* agent[assembler].type = $provenance-participant-type#assembler
* agent[assembler].who only Reference(Device)
* agent[informant].type 1..1
* agent[informant].type = $provenance-participant-type#informant
* agent[informant].who only Reference(Patient or RelatedPerson)
* entity MS
* entity.role = #source
* entity.what.identifier MS
* signature MS

// An agency confirms one item of a safety plan (docs/design/fhir-model.md, "Agency confirmation of a
// safety plan item"; thrive_fhir.entry_confirmation). Intended parent: UKCore-Provenance. The item is
// named by the targetElement extension (HL7 extensions pack), required by an invariant: the pack's
// definitions are not available offline for SUSHI to slice on.
Profile: ThriveAgencyConfirmation
Parent: Provenance
Id: thrive-agency-confirmation
Title: "THRIVE agency confirmation of a safety plan item"
Description: "An agency confirms it will do what one item of the young person's safety plan says it will: the worker, on behalf of their organisation, attests that item (by its element id) of the version of the plan they read."
* insert ThriveProfile
* insert ImposeUKCore($UKCore-Provenance)
* obeys thr-conf-1
* target 1..1 MS
* target only Reference(CarePlan)
* recorded MS
* activity 1..1 MS
* activity = ThriveConcepts#agency-confirmed
* agent 1..1 MS
* agent.type 1..1 MS
* agent.type = $provenance-participant-type#attester
* agent.who MS
* agent.who only Reference(Practitioner or PractitionerRole)
* agent.onBehalfOf 1..1 MS
* agent.onBehalfOf only Reference(Organization)
