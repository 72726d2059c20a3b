// Co-produced safety plan (docs/design/fhir-model.md 2.3). Intended parent: UKCore-CarePlan (draft in UK Core).
// Crisis plan (SNOMED CT) and THRIVE safety plan are two different concepts, so two category entries.
Profile: ThriveSafetyPlan
Parent: CarePlan
Id: thrive-safety-plan
Title: "THRIVE safety plan"
Description: "A safety plan co-produced with the young person and shared with the agencies they chose: one activity per item, in the young person's words."
* insert ThriveProfile
* insert ImposeUKCore($UKCore-CarePlan)
* obeys thr-sp-1 and thr-sp-2 and thr-sp-3 and thr-sp-4
* meta.security MS
* extension contains $ext-episode named episodeOfCare 0..1 MS
* insert BusinessIdentifier
* status MS
* intent MS
* intent = #plan
* category 2..* MS
* category ^slicing.discriminator.type = #pattern
* category ^slicing.discriminator.path = "$this"
* category ^slicing.rules = #open
* category contains crisisPlan 1..1 MS and safetyPlan 1..1 MS
* category[crisisPlan] = $sct#736253002 "Mental health crisis plan"
* category[safetyPlan] = ThriveConcepts#safety-plan
* subject MS
* subject only Reference(Patient)
* period 1..1 MS
* period.start 1..1 MS
* period.end 1..1 MS
* period.end ^short = "Agreed review date (local convention: out of date after it)"
* created 1..1 MS
* author 1..1 MS
* author only Reference(PractitionerRole or Practitioner)
* contributor MS
* careTeam MS
* supportingInfo MS
* note MS
* activity 1..* MS
* activity.reference 0..0
* activity.detail 1..1 MS
* activity.detail.code 1..1 MS
* activity.detail.code from SafetyPlanSectionVS (required)
* activity.detail.status MS
* activity.detail.description 1..1 MS
* activity.detail.description ^short = "The young person's words"
* activity.detail.performer MS
