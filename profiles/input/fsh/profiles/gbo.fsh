// Goals Based Outcomes (docs/design/fhir-model.md 2.3). UK Core has no Goal profile: parent is R4 Goal and no
// UK Core profile is imposed. The goal-slot code in target.measure links goal and scores.
Profile: ThriveGboGoal
Parent: Goal
Id: thrive-gbo-goal
Title: "THRIVE GBO goal"
Description: "A Goals Based Outcomes goal in the young person's own words, occupying goal slot 1, 2 or 3 (the SNOMED CT goal-score code in target.measure)."
* insert ThriveProfile
* obeys thr-goal-1
* extension contains $ext-goal-acceptance named acceptance 0..* MS
* insert BusinessIdentifier
* lifecycleStatus MS
* achievementStatus MS
* category 1..* MS
* category = ThriveConcepts#gbo-goal
* description MS
* description.text 1..1 MS
* description.text ^short = "The young person's own words, unedited"
* subject MS
* subject only Reference(Patient)
* start[x] 1..1 MS
* start[x] only date
* target 1..1 MS
* target.measure 1..1 MS
* target.measure from GboGoalScoreVS (required)
* statusDate MS
* statusReason MS
* expressedBy 1..1 MS
* expressedBy only Reference(Patient or RelatedPerson)
* note MS

// Intended parent: UKCore-Observation. focus -> Goal follows the HL7 Person-Centered Outcomes IG;
// resource-pertainsToGoal is not used as well.
Profile: ThriveGboScore
Parent: Observation
Id: thrive-gbo-score
Title: "THRIVE GBO score"
Description: "One rating, 0 to 10, of progress towards one GBO goal by one rater at one contact."
* insert ThriveProfile
* insert ImposeUKCore($UKCore-Observation)
* obeys thr-gbo-1 and thr-gbo-2
* extension contains $ext-episode named episodeOfCare 1..1 MS
* insert BusinessIdentifier
* status MS
* status from RecordedObservationStatusVS (required)
* category 1..* MS
* category = $obs-category#survey
* code MS
* code from GboGoalScoreVS (required)
* subject 1..1 MS
* subject only Reference(Patient)
* focus 1..1 MS
* focus only Reference(Goal)
* encounter MS
* effective[x] 1..1 MS
* effective[x] only dateTime
* performer 1..1 MS
* performer only Reference(Patient or RelatedPerson or Practitioner or PractitionerRole)
* performer ^short = "Who gave the rating"
* value[x] 1..1 MS
* value[x] only integer
* valueInteger ^minValueInteger = 0
* valueInteger ^maxValueInteger = 10
* derivedFrom MS
* derivedFrom only Reference(QuestionnaireResponse)
* hasMember 0..0
* component 0..0
