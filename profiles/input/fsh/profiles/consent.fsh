// Agreement to share (docs/design/fhir-model.md 2.3). Intended parent: UKCore-Consent (draft in UK Core).
// R4's ppc-2..5 never fire, hence thr-con-1. A Consent is a record, not enforcement.
Profile: ThriveSharingConsent
Parent: Consent
Id: thrive-sharing-consent
Title: "THRIVE sharing consent"
Description: "The young person's (or a person with parental responsibility's) agreement to share their plan with named agencies, under the local information-sharing agreement."
* insert ThriveProfile
* insert ImposeUKCore($UKCore-Consent)
* obeys thr-con-1 and thr-con-2 and thr-con-3 and thr-con-4
* insert BusinessIdentifier
* extension contains SharingDecisionCompetence named decisionCompetence 0..1 MS
* status MS
* scope MS
* scope = $consentscope#patient-privacy
* category 1..* MS
* category = $v3-ActCode#IDSCL
* patient 1..1 MS
* dateTime 1..1 MS
* performer 1..* MS
* performer only Reference(Patient or RelatedPerson)
* organization 1..* MS
* source[x] MS
* policy 1..* MS
* policy.uri 1..1 MS
* provision 1..1 MS
* provision.type 1..1 MS
* provision.type = #permit
* provision.period 1..1 MS
* provision.actor 1..* MS
* provision.actor.role = $v3-ParticipationType#IRCP
* provision.actor.reference only Reference(Organization)
* provision.action 1..* MS
* provision.action = $consentaction#access
* provision.purpose MS
* provision.data 1..* MS
* provision.data.meaning = #related

// Who was judged competent to decide (Gillick competence or capacity), and a note of how: R4 Consent
// has no element for it, so the app writes this extension on the sharing Consent.
Extension: SharingDecisionCompetence
Id: sharing-decision-competence
Title: "Young person's competence to decide about sharing"
Description: "Whether the young person was judged competent to decide about sharing their plan (assessment), with an optional note of how that was judged."
Context: Consent
* insert ThriveProfile
* extension contains assessment 1..1 and note 0..1
* extension[assessment].value[x] only code
* extension[assessment].valueCode from DecisionCompetenceVS (required)
* extension[note].value[x] only string
