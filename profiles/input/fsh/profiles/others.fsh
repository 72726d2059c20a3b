// Episode, care team, local offer, risk flag and read audit (docs/design/fhir-model.md 2.2, 2.3 "Others", 4).

// Intended parent: UKCore-EpisodeOfCare (draft in UK Core).
Profile: ThriveEpisode
Parent: EpisodeOfCare
Id: thrive-episode
Title: "THRIVE episode"
Description: "A referral to, or involvement with, one agency; groupings, scores and plans point to it with the workflow-episodeOfCare extension."
* insert ThriveProfile
* insert ImposeUKCore($UKCore-EpisodeOfCare)
* insert BusinessIdentifier
* identifier ^short = "The agency's referral id (for NHS providers the MHSDS service request id)"
* status MS
* type MS
* patient MS
* managingOrganization 1..1 MS
* period 1..1 MS
* period.start 1..1 MS
* referralRequest MS
* team MS

// Intended parent: UKCore-CareTeam (draft in UK Core).
Profile: ThriveCareTeam
Parent: CareTeam
Id: thrive-care-team
Title: "THRIVE care team"
Description: "The people and agencies involved with the young person: one participant per person or agency, each with a role and the organisation they act for."
* insert ThriveProfile
* insert ImposeUKCore($UKCore-CareTeam)
* extension contains $ext-episode named episodeOfCare 0..1 MS
* insert BusinessIdentifier
* status 1..1 MS
* subject 1..1 MS
* subject only Reference(Patient)
* participant 1..* MS
* participant.role 1..* MS
* participant.member 1..1 MS
* participant.onBehalfOf MS

// Intended parent: UKCore-HealthcareService.
Profile: ThriveLocalOffer
Parent: HealthcareService
Id: thrive-local-offer
Title: "THRIVE local offer service"
Description: "A service in the local offer, with the THRIVE groupings it serves, so signposting can offer the services that fit the young person's grouping."
* insert ThriveProfile
* insert ImposeUKCore($UKCore-HealthcareService)
* identifier MS
* active 1..1 MS
* providedBy 1..1 MS
* type 1..* MS
* type from LocalOfferVS (extensible)
* name 1..1 MS
* telecom MS
* characteristic 1..* MS
* characteristic from ThriveGroupingVS (required)
* characteristic ^short = "The THRIVE groupings the service serves"

// Intended parent: UKCore-Flag (draft in UK Core). Derived by the app from the grouping and the
// safety plan; never the source of truth.
Profile: ThriveRiskFlag
Parent: Flag
Id: thrive-risk-flag
Title: "THRIVE risk support flag"
Description: "Banner shown at first glance in every view while the young person is in Getting Risk Support with a safety plan."
* insert ThriveProfile
* insert ImposeUKCore($UKCore-Flag)
* insert BusinessIdentifier
* status MS
* category MS
* code MS
* code = ThriveConcepts#risk-support-alert
* subject MS
* subject only Reference(Patient)
* period 1..1 MS
* period.start 1..1 MS
* author 1..1 MS

// Intended parent: UKCore-AuditEvent (draft in UK Core). Written where the read happens.
Profile: ThriveReadAudit
Parent: AuditEvent
Id: thrive-read-audit
Title: "THRIVE read audit"
Description: "An agency's read of a young person's shared THRIVE record."
* insert ThriveProfile
* insert ImposeUKCore($UKCore-AuditEvent)
* obeys thr-aud-1 and thr-aud-2 and thr-aud-3
* type MS
* type = $audit-event-type#rest
* subtype 1..* MS
* action 1..1 MS
* recorded MS
* outcome 1..1 MS
* purposeOfEvent 1..* MS
* purposeOfEvent = $v3-ActReason#TREAT
* agent MS
* source MS
* source.observer MS
* entity 1..* MS
* entity.what 1..1 MS
