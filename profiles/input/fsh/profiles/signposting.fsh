// Signposting (intent proposal) and referral (intent order) (docs/design/fhir-model.md 2.3).
// Intended parent: UKCore-ServiceRequest. The receiving agency updates the Task, never this request.
Profile: ThriveSignposting
Parent: ServiceRequest
Id: thrive-signposting
Title: "THRIVE signposting or referral"
Description: "Signposting to, or a referral to, a local service mapped to the young person's grouping."
* insert ThriveProfile
* insert ImposeUKCore($UKCore-ServiceRequest)
* obeys thr-sr-1 and thr-sr-2 and thr-sr-3
* extension contains
    $ext-episode named episodeOfCare 1..1 MS and
    $ext-pertains-to-goal named pertainsToGoal 0..* MS
* insert BusinessIdentifier
* basedOn MS
* status MS
* intent MS
* category 1..1 MS
* category from RequestCategoryVS (required)
* code 1..1 MS
* code from LocalOfferVS (extensible)
* subject MS
* subject only Reference(Patient)
* authoredOn 1..1 MS
* requester 1..1 MS
* performer 1..* MS
* performer only Reference(HealthcareService or Organization)
* reasonReference 1..* MS
* reasonReference only Reference(Observation)
* reasonReference ^short = "The THRIVE grouping in force"
* note MS

// Referral management task (docs/design/fhir-model.md 2.3, as in Gravity SDOH). Intended parent: UKCore-Task.
Profile: ThriveReferralTask
Parent: Task
Id: thrive-referral-task
Title: "THRIVE referral task"
Description: "The task that carries a referral to the receiving agency, which updates it as it accepts, completes or rejects the referral."
* insert ThriveProfile
* insert ImposeUKCore($UKCore-Task)
* obeys thr-task-1 and thr-task-2
* insert BusinessIdentifier
* status MS
* statusReason MS
* intent MS
* intent = #order
* code 1..1 MS
* code = $task-code#fulfill
* focus 1..1 MS
* focus only Reference(ServiceRequest)
* for 1..1 MS
* for only Reference(Patient)
* authoredOn 1..1 MS
* requester 1..1 MS
* owner MS
* owner only Reference(Organization or HealthcareService)
