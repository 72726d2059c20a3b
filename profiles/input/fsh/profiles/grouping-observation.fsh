// Agreed THRIVE grouping (docs/design/fhir-model.md 2.3). Intended parent: UKCore-Observation.
// History is a chain through derivedFrom; hasMember is not used (a history panel would have to be
// rewritten on every change) and the old grouping is never edited to close it.
Profile: ThriveGroupingObservation
Parent: Observation
Id: thrive-grouping-observation
Title: "THRIVE grouping Observation"
Description: "A THRIVE needs-based grouping agreed with the young person and family at a point in time, with who took part, how it was reached and why it changed."
* insert ThriveProfile
* insert ImposeUKCore($UKCore-Observation)
* obeys thr-grp-1 and thr-grp-2 and thr-grp-3 and thr-grp-4 and thr-grp-5
* extension contains $ext-episode named episodeOfCare 1..1 MS
* insert BusinessIdentifier
* status MS
* status from RecordedObservationStatusVS (required)
* category 1..* MS
* category = ThriveConcepts#thrive
* code MS
* code = ThriveConcepts#thrive-grouping
* subject 1..1 MS
* subject only Reference(Patient)
* encounter MS
* effective[x] 1..1 MS
* effective[x] only dateTime
* issued 1..1 MS
* performer 1..* MS
* value[x] 1..1 MS
* value[x] only CodeableConcept
* valueCodeableConcept from ThriveGroupingVS (required)
* method 1..1 MS
* method from GroupingMethodVS (required)
* note MS
* derivedFrom MS
* derivedFrom only Reference(Observation)
* hasMember 0..0
* component MS
* component ^slicing.discriminator.type = #pattern
* component ^slicing.discriminator.path = "code"
* component ^slicing.rules = #open
* component ^slicing.description = "Involvement, reasons and change reason, one component each, told apart by code."
* component contains
    youngPersonInvolvement 1..1 MS and
    familyInvolvement 0..1 MS and
    notInvolvedReason 0..1 MS and
    groupingChangeReason 0..1 MS
* component[youngPersonInvolvement].code = ThriveConcepts#young-person-involvement
* component[youngPersonInvolvement].value[x] 1..1
* component[youngPersonInvolvement].value[x] only CodeableConcept
* component[youngPersonInvolvement].valueCodeableConcept from InvolvementVS (required)
* component[familyInvolvement].code = ThriveConcepts#family-involvement
* component[familyInvolvement].value[x] 1..1
* component[familyInvolvement].value[x] only CodeableConcept
* component[familyInvolvement].valueCodeableConcept from InvolvementVS (required)
* component[notInvolvedReason].code = ThriveConcepts#not-involved-reason
* component[notInvolvedReason].value[x] 1..1
* component[notInvolvedReason].value[x] only string
* component[groupingChangeReason].code = ThriveConcepts#grouping-change-reason
* component[groupingChangeReason].value[x] 1..1
* component[groupingChangeReason].value[x] only CodeableConcept
* component[groupingChangeReason].valueCodeableConcept from GroupingChangeReasonVS (extensible)
