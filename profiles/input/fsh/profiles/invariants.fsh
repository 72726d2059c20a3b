// FHIRPath invariants of the THRIVE profiles (docs/design/fhir-model.md 2.3). Kept to expressions fhirpathpy
// (R4 model) evaluates; every key appears in tests/fixtures/invalid/expected.json. Literal URLs in
// expressions must equal thrive_fhir.canonical (a test checks them).

// ---- grouping Observation ----
Invariant: thr-grp-1
Description: "The grouping must be exactly one code from the THRIVE grouping CodeSystem."
Severity: #error
Expression: "value.ofType(CodeableConcept).coding.where(system='https://thrive-fhir.org/fhir/CodeSystem/thrive-grouping').count() = 1"

Invariant: thr-grp-2
Description: "A clinician (Practitioner or PractitionerRole) must be among the performers of a grouping decision."
Severity: #error
Expression: "performer.where(reference.startsWith('Practitioner')).exists()"

Invariant: thr-grp-3
Description: "If the young person was not involved in the grouping decision, the record must say why (component not-involved-reason)."
Severity: #error
Expression: "component.where(code.coding.code='young-person-involvement' and value.ofType(CodeableConcept).coding.code='not-involved').exists() implies component.where(code.coding.code='not-involved-reason').exists()"

Invariant: thr-grp-4
Description: "If the young person took part in the grouping decision, they must be listed as a performer (Patient)."
Severity: #error
Expression: "component.where(code.coding.code='young-person-involvement' and value.ofType(CodeableConcept).coding.code!='not-involved').exists() implies performer.where(reference.startsWith('Patient/')).exists()"

Invariant: thr-grp-5
Description: "A grouping replaces at most one earlier grouping, referenced as an Observation in derivedFrom."
Severity: #error
Expression: "derivedFrom.count() <= 1 and derivedFrom.all(reference.startsWith('Observation/'))"

// ---- GBO goal and score ----
Invariant: thr-goal-1
Description: "A GBO goal needs the young person's own words (description.text) and exactly one SNOMED CT goal-score code as its target measure."
Severity: #error
Expression: "description.text.exists() and target.measure.coding.where(system='http://snomed.info/sct').count() = 1"

Invariant: thr-gbo-1
Description: "A GBO score is a whole number from 0 to 10."
Severity: #error
Expression: "value.ofType(integer).exists() and value.ofType(integer) >= 0 and value.ofType(integer) <= 10"

Invariant: thr-gbo-2
Description: "A GBO score rates exactly one Goal (focus) and has exactly one rater (performer)."
Severity: #error
Expression: "focus.count() = 1 and focus.reference.startsWith('Goal/') and performer.count() = 1"

// ---- safety plan ----
Invariant: thr-sp-1
Description: "A safety plan carries the THRIVE safety-plan category."
Severity: #error
Expression: "category.coding.where(system='https://thrive-fhir.org/fhir/CodeSystem/thrive-concepts' and code='safety-plan').exists()"

Invariant: thr-sp-2
Description: "An active safety plan must have warning signs, professionals and services to contact, and a review date (period.end)."
Severity: #error
Expression: "status = 'active' implies (activity.detail.code.coding.where(code='warning-signs').exists() and activity.detail.code.coding.where(code='professionals-agencies').exists() and period.end.exists())"

Invariant: thr-sp-3
Description: "Each safety-plan item is written inline as activity.detail, never as a reference to another resource."
Severity: #error
Expression: "activity.all(detail.exists() and reference.empty())"

Invariant: thr-sp-4
Description: "A safety plan is co-produced: it needs an author, and the young person as a contributor or a note saying why not."
Severity: #error
Expression: "author.exists() and (contributor.where(reference.startsWith('Patient/')).exists() or note.exists())"

// ---- sharing consent ----
Invariant: thr-con-1
Description: "A sharing consent names the information-sharing policy, the young person and who consented."
Severity: #error
Expression: "(policy.exists() or policyRule.exists()) and patient.exists() and performer.exists()"

Invariant: thr-con-2
Description: "A sharing consent permits sharing with at least one Organization (provision.actor)."
Severity: #error
Expression: "provision.type = 'permit' and provision.actor.where(reference.reference.startsWith('Organization/')).exists()"

Invariant: thr-con-3
Description: "Every agency the young person agreed to share with has the role IRCP (information recipient)."
Severity: #error
Expression: "provision.actor.all(role.coding.where(system='http://terminology.hl7.org/CodeSystem/v3-ParticipationType' and code='IRCP').exists())"

Invariant: thr-con-4
Description: "A sharing consent covers the young person's plan: provision.data references a CarePlan."
Severity: #error
Expression: "provision.data.where(reference.reference.startsWith('CarePlan/')).exists()"

// ---- signposting and referral ----
Invariant: thr-sr-1
Description: "Signposting and referrals go to a HealthcareService (preferred) or an Organization."
Severity: #error
Expression: "performer.all(reference.startsWith('HealthcareService/') or reference.startsWith('Organization/'))"

Invariant: thr-sr-2
Description: "A referral is an order (intent = order)."
Severity: #error
Expression: "category.coding.where(code='referral').exists() implies intent = 'order'"

Invariant: thr-sr-3
Description: "Signposting is a proposal the family may take up (intent = proposal)."
Severity: #error
Expression: "category.coding.where(code='signposting').exists() implies intent = 'proposal'"

Invariant: thr-task-1
Description: "Once a referral task is past draft it must name the receiving agency (owner)."
Severity: #error
Expression: "status = 'draft' or owner.exists()"

Invariant: thr-task-2
Description: "A rejected or cancelled referral must say why in words (statusReason.text)."
Severity: #error
Expression: "(status = 'rejected' or status = 'cancelled') implies statusReason.text.exists()"

// ---- provenance and audit ----
Invariant: thr-prov-1
Description: "The activity of a save is CREATE or UPDATE from v3-DataOperation."
Severity: #error
Expression: "activity.coding.where(system='http://terminology.hl7.org/CodeSystem/v3-DataOperation' and (code='CREATE' or code='UPDATE')).exists()"

Invariant: thr-prov-2
Description: "A save has exactly one author agent (the clinician), acting on behalf of an Organization."
Severity: #error
Expression: "agent.where(type.coding.where(code='author').exists()).count() = 1 and agent.where(type.coding.where(code='author').exists()).onBehalfOf.exists()"

Invariant: thr-aud-1
Description: "A read audit records a FHIR read or search (subtype read or search-type)."
Severity: #error
Expression: "subtype.where(system='http://hl7.org/fhir/restful-interaction' and (code='read' or code='search-type')).exists()"

Invariant: thr-aud-2
Description: "A read audit's action is R (read) or E (execute, for searches)."
Severity: #error
Expression: "action = 'R' or action = 'E'"

Invariant: thr-aud-3
Description: "A read audit names who read (an agent with requestor = true)."
Severity: #error
Expression: "agent.where(requestor = true).exists()"

Invariant: thr-conf-1
Description: "A confirmation names exactly one item of the plan: one targetElement extension on its target."
Severity: #error
Expression: "target.extension.where(url='http://hl7.org/fhir/StructureDefinition/targetElement').count() = 1"
