// Aliases used across the FSH sources.
// The project ones MUST start with thrive_fhir.canonical.BASE (https://thrive-fhir.org/fhir);
// tests/foundation/test_profiles_build.py checks every $thr-* alias against canonical.py.
// Our own CodeSystems and ValueSets are referred to by id (SUSHI resolves them to the canonical URL),
// so the base appears here and in invariant expressions only.

// ---- project identifier systems (docs/design/fhir-model.md section 4) ----
Alias: $thr-id-grouping = https://thrive-fhir.org/fhir/Id/grouping
Alias: $thr-id-gbo-goal = https://thrive-fhir.org/fhir/Id/gbo-goal
Alias: $thr-id-gbo-score = https://thrive-fhir.org/fhir/Id/gbo-score
Alias: $thr-id-safety-plan = https://thrive-fhir.org/fhir/Id/safety-plan
Alias: $thr-id-care-team = https://thrive-fhir.org/fhir/Id/care-team
Alias: $thr-id-sharing-consent = https://thrive-fhir.org/fhir/Id/sharing-consent
Alias: $thr-id-signposting = https://thrive-fhir.org/fhir/Id/signposting
Alias: $thr-id-referral-task = https://thrive-fhir.org/fhir/Id/referral-task
Alias: $thr-id-episode = https://thrive-fhir.org/fhir/Id/episode
Alias: $thr-id-flag = https://thrive-fhir.org/fhir/Id/flag
Alias: $thr-id-provenance = https://thrive-fhir.org/fhir/Id/provenance
Alias: $thr-id-local-offer = https://thrive-fhir.org/fhir/Id/local-offer
Alias: $thr-source = https://thrive-fhir.org/fhir/source/RXX
Alias: $thr-policy-isa = https://thrive-fhir.org/fhir/policy/information-sharing-agreement-v1

// ---- external code systems ----
Alias: $sct = http://snomed.info/sct
Alias: $obs-category = http://terminology.hl7.org/CodeSystem/observation-category
Alias: $v3-confidentiality = http://terminology.hl7.org/CodeSystem/v3-Confidentiality
Alias: $consentscope = http://terminology.hl7.org/CodeSystem/consentscope
Alias: $v3-ActCode = http://terminology.hl7.org/CodeSystem/v3-ActCode
Alias: $v3-ParticipationType = http://terminology.hl7.org/CodeSystem/v3-ParticipationType
Alias: $consentaction = http://terminology.hl7.org/CodeSystem/consentaction
Alias: $v3-ActReason = http://terminology.hl7.org/CodeSystem/v3-ActReason
Alias: $v3-DataOperation = http://terminology.hl7.org/CodeSystem/v3-DataOperation
Alias: $provenance-participant-type = http://terminology.hl7.org/CodeSystem/provenance-participant-type
Alias: $audit-event-type = http://terminology.hl7.org/CodeSystem/audit-event-type
Alias: $restful-interaction = http://hl7.org/fhir/restful-interaction
Alias: $task-code = http://hl7.org/fhir/CodeSystem/task-code
Alias: $goal-achievement = http://terminology.hl7.org/CodeSystem/goal-achievement
Alias: $episodeofcare-type = http://terminology.hl7.org/CodeSystem/episodeofcare-type
Alias: $participant-role = http://terminology.hl7.org/CodeSystem/extra-security-role-type
Alias: $flag-category = http://terminology.hl7.org/CodeSystem/flag-category
Alias: $nhs-number = https://fhir.nhs.uk/Id/nhs-number
Alias: $ods-org = https://fhir.nhs.uk/Id/ods-organization-code

// ---- extensions (R4 core) ----
Alias: $ext-episode = http://hl7.org/fhir/StructureDefinition/workflow-episodeOfCare
Alias: $ext-goal-acceptance = http://hl7.org/fhir/StructureDefinition/goal-acceptance
Alias: $ext-pertains-to-goal = http://hl7.org/fhir/StructureDefinition/resource-pertainsToGoal
Alias: $ext-impose-profile = http://hl7.org/fhir/StructureDefinition/structuredefinition-imposeProfile

// ---- intended UK Core parents (not loadable offline; recorded via imposeProfile) ----
Alias: $UKCore-Observation = https://fhir.hl7.org.uk/StructureDefinition/UKCore-Observation
Alias: $UKCore-CarePlan = https://fhir.hl7.org.uk/StructureDefinition/UKCore-CarePlan
Alias: $UKCore-Consent = https://fhir.hl7.org.uk/StructureDefinition/UKCore-Consent
Alias: $UKCore-ServiceRequest = https://fhir.hl7.org.uk/StructureDefinition/UKCore-ServiceRequest
Alias: $UKCore-Task = https://fhir.hl7.org.uk/StructureDefinition/UKCore-Task
Alias: $UKCore-Provenance = https://fhir.hl7.org.uk/StructureDefinition/UKCore-Provenance
Alias: $UKCore-EpisodeOfCare = https://fhir.hl7.org.uk/StructureDefinition/UKCore-EpisodeOfCare
Alias: $UKCore-CareTeam = https://fhir.hl7.org.uk/StructureDefinition/UKCore-CareTeam
Alias: $UKCore-HealthcareService = https://fhir.hl7.org.uk/StructureDefinition/UKCore-HealthcareService
Alias: $UKCore-Flag = https://fhir.hl7.org.uk/StructureDefinition/UKCore-Flag
Alias: $UKCore-AuditEvent = https://fhir.hl7.org.uk/StructureDefinition/UKCore-AuditEvent
