// Valid examples of every THRIVE profile (docs/design/fhir-model.md section 3, with this project's base).
// ids of app-created resources are deterministic (docs/design/fhir-model.md section 4):
// id = thrive_fhir.ids.resource_id(kind, identifier value); tests check each one.

RuleSet: Episode
* extension[episodeOfCare].valueReference = Reference(thrive-episode-example)

RuleSet: Concept(section, description, who)
* activity[+].detail.code = SafetyPlanSection#{section}
* activity[=].detail.status = #in-progress
* activity[=].detail.description = "{description}"
* activity[=].detail.performer[0] = Reference({who})

// ---- groupings: Getting Help in January, Getting Risk Support agreed in March -----------------
Instance: grouping-example-previous
InstanceOf: ThriveGroupingObservation
Usage: #example
Title: "Grouping: Getting Help (earlier)"
* id = "9a8f6755-d310-51db-95a3-866d4874b686"
* meta.source = $thr-source
* insert Episode
* identifier[0].system = $thr-id-grouping
* identifier[0].value = "5d6e7f80-9a1b-4c2d-8e3f-4a5b6c7d8e9f"
* status = #final
* category[0] = ThriveConcepts#thrive "THRIVE Framework record"
* code = ThriveConcepts#thrive-grouping "THRIVE needs-based grouping"
* subject = Reference(Patient/pat-example-01)
* encounter = Reference(Encounter/enc-example-01)
* effectiveDateTime = "2025-01-14T15:20:00Z"
* issued = "2025-01-14T15:31:00Z"
* performer[0] = Reference(PractitionerRole/prr-camhs-01)
* performer[+] = Reference(Patient/pat-example-01)
* performer[+] = Reference(RelatedPerson/rp-parent-01)
* valueCodeableConcept = ThriveGrouping#getting-help "Getting Help"
* method = ThriveConcepts#shared-decision-making "Agreed through shared decision making"
* component[youngPersonInvolvement].valueCodeableConcept = Involvement#agreed "Agreed"
* component[familyInvolvement].valueCodeableConcept = Involvement#agreed "Agreed"

Instance: grouping-example-current
InstanceOf: ThriveGroupingObservation
Usage: #example
Title: "Grouping: Getting Risk Support, replacing Getting Help"
* id = "5baaa2a7-3433-5492-bab2-4b1d752b9ab3"
* meta.source = $thr-source
* insert Episode
* identifier[0].system = $thr-id-grouping
* identifier[0].value = "8e4f1c2a-6b3d-4a7e-8f90-1c2d3e4f5a6b"
* status = #final
* category[0] = ThriveConcepts#thrive "THRIVE Framework record"
* code = ThriveConcepts#thrive-grouping "THRIVE needs-based grouping"
* subject = Reference(Patient/pat-example-01)
* encounter = Reference(Encounter/enc-example-07)
* effectiveDateTime = "2025-03-04T15:30:00Z"
* issued = "2025-03-04T15:42:10Z"
* performer[0] = Reference(PractitionerRole/prr-camhs-01)
* performer[+] = Reference(Patient/pat-example-01)
* performer[+] = Reference(RelatedPerson/rp-parent-01)
* valueCodeableConcept = ThriveGrouping#getting-risk-support "Getting Risk Support"
* method = ThriveConcepts#shared-decision-making "Agreed through shared decision making"
* derivedFrom[0] = Reference(grouping-example-previous)
* note[0].authorReference = Reference(Practitioner/pr-camhs-01)
* note[0].text = "Therapy paused at the young person's request; focus on keeping safe with school and social care."
* component[youngPersonInvolvement].valueCodeableConcept = Involvement#agreed "Agreed"
* component[familyInvolvement].valueCodeableConcept = Involvement#agreed "Agreed"
* component[groupingChangeReason].valueCodeableConcept = GroupingChangeReason#not-benefiting "Not benefiting from help"

// ---- GBO goal and two scores (2 then 6: +4, a reliable improvement) ---------------------------
Instance: gbo-goal-example
InstanceOf: ThriveGboGoal
Usage: #example
Title: "GBO goal 1: stay in school for the whole day"
* id = "19e64f79-5614-5117-a076-b73f8f242fd6"
* extension[acceptance].extension[individual].valueReference = Reference(Patient/pat-example-01)
* extension[acceptance].extension[status].valueCode = #agree
* identifier[0].system = $thr-id-gbo-goal
* identifier[0].value = "2a7c9e11-4b5d-4c6f-9a8b-7d6e5f4a3b2c"
* lifecycleStatus = #active
* achievementStatus = $goal-achievement#improving "Improving"
* category[0] = ThriveConcepts#gbo-goal "Goals Based Outcomes goal"
* description.text = "To be able to stay in school for the whole day"
* subject = Reference(Patient/pat-example-01)
* startDate = "2025-01-14"
* target[0].measure = $sct#1638531000000102 "Goal-Based Outcomes tool goal progress chart - goal 1 score"
* expressedBy = Reference(Patient/pat-example-01)

RuleSet: GboScore(identifierValue, encounter, date, score)
* insert Episode
* identifier[0].system = $thr-id-gbo-score
* identifier[0].value = "{identifierValue}"
* status = #final
* category[0] = $obs-category#survey "Survey"
* code = $sct#1638531000000102 "Goal-Based Outcomes tool goal progress chart - goal 1 score"
* subject = Reference(Patient/pat-example-01)
* focus[0] = Reference(gbo-goal-example)
* encounter = Reference(Encounter/{encounter})
* effectiveDateTime = "{date}"
* performer[0] = Reference(Patient/pat-example-01)
* valueInteger = {score}

Instance: gbo-score-example-first
InstanceOf: ThriveGboScore
Usage: #example
Title: "GBO goal 1 score: 2 (first)"
* id = "be1c88df-f3d6-5b5c-9c40-cfcc0d1d9cdf"
* insert GboScore(91b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d, enc-example-01, 2025-01-14, 2)

Instance: gbo-score-example-latest
InstanceOf: ThriveGboScore
Usage: #example
Title: "GBO goal 1 score: 6 (latest)"
* id = "8596951f-bf2b-593f-bae2-1112bee177d4"
* insert GboScore(a1b2c3d4-e5f6-4789-abcd-ef0123456789, enc-example-07, 2025-03-04, 6)

// ---- safety plan, shared with school and social care -------------------------------------------
Instance: safety-plan-example
InstanceOf: ThriveSafetyPlan
Usage: #example
Title: "Safety plan (co-produced)"
* id = "8107ce8c-f1bf-5c5c-8a7e-875f195aaf6b"
* meta.security[0] = $v3-confidentiality#R "restricted"
* insert Episode
* identifier[0].system = $thr-id-safety-plan
* identifier[0].value = "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f"
* status = #active
* intent = #plan
* category[crisisPlan] = $sct#736253002 "Mental health crisis plan"
* category[safetyPlan] = ThriveConcepts#safety-plan "Co-produced safety plan"
* title = "My safety plan"
* subject = Reference(Patient/pat-example-01)
* period.start = "2025-03-04"
* period.end = "2025-06-04"
* created = "2025-03-04T16:05:00Z"
* author = Reference(PractitionerRole/prr-camhs-01)
* contributor[0] = Reference(Patient/pat-example-01)
* contributor[+] = Reference(RelatedPerson/rp-parent-01)
* contributor[+] = Reference(PractitionerRole/prr-schoolnurse-01)
* contributor[+] = Reference(PractitionerRole/prr-socialcare-01)
* careTeam[0] = Reference(care-team-example)
* supportingInfo[0] = Reference(grouping-example-current)
* insert Concept(warning-signs, Staying in my room\, not answering messages\, not sleeping, Patient/pat-example-01)
* insert Concept(internal-coping, Music with headphones\, drawing\, walking the dog, Patient/pat-example-01)
* insert Concept(social-distraction, Thursday youth club; the library after school, Patient/pat-example-01)
* insert Concept(people-to-ask, Mum (mobile number on her record\), RelatedPerson/rp-parent-01)
* insert Concept(professionals-agencies, 24-hour crisis line 0808 157 0123 (fictional\); school nurse on school days, local-offer-crisis-line)
* activity[=].detail.performer[+] = Reference(PractitionerRole/prr-schoolnurse-01)
* insert Concept(safe-environment, Mum keeps medicines in a locked box, RelatedPerson/rp-parent-01)
* insert Concept(reasons-for-living, My dog\, my little sister\, finishing my art course, Patient/pat-example-01)
* insert Concept(agency-actions, School: a quiet room pass and a daily check-in with the school nurse. Social care: weekly visit by the family's social worker, PractitionerRole/prr-socialcare-01)
* activity[=].id = "entry-3f2a9c71d04b8e65"

Instance: sharing-consent-example
InstanceOf: ThriveSharingConsent
Usage: #example
Title: "Consent to share the safety plan with school and children's social care"
* id = "74160bc2-6106-557d-b7eb-49380fe43244"
* identifier[0].system = $thr-id-sharing-consent
* identifier[0].value = "4d5e6f7a-8b9c-4d0e-9f1a-2b3c4d5e6f70"
* status = #active
* scope = $consentscope#patient-privacy "Privacy Consent"
* category[0] = $v3-ActCode#IDSCL "information disclosure"
* patient = Reference(Patient/pat-example-01)
* dateTime = "2025-03-04T16:10:00Z"
* performer[0] = Reference(Patient/pat-example-01)
* organization[0] = Reference(Organization/org-camhs-01)
* policy[0].uri = $thr-policy-isa
* provision.type = #permit
* provision.period.start = "2025-03-04"
* provision.period.end = "2026-03-04"
* provision.actor[0].role = $v3-ParticipationType#IRCP "information recipient"
* provision.actor[0].reference = Reference(Organization/org-school-01)
* provision.actor[+].role = $v3-ParticipationType#IRCP "information recipient"
* provision.actor[=].reference = Reference(Organization/org-socialcare-01)
* provision.action[0] = $consentaction#access "Access"
* provision.purpose[0] = $v3-ActReason#TREAT "treatment"
* provision.data[0].meaning = #related
* provision.data[0].reference = Reference(safety-plan-example)

// ---- signposting, referral and its task ------------------------------------------------------
Instance: signposting-example
InstanceOf: ThriveSignposting
Usage: #example
Title: "Signposting to online support"
* id = "1ea011a5-da7f-5938-8887-80f1082a3a1f"
* insert Episode
* extension[pertainsToGoal].valueReference = Reference(gbo-goal-example)
* identifier[0].system = $thr-id-signposting
* identifier[0].value = "6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d"
* status = #active
* intent = #proposal
* category[0] = ThriveConcepts#signposting "Signposting"
* code = LocalOfferExample#online-support "Online support and counselling"
* subject = Reference(Patient/pat-example-01)
* authoredOn = "2025-03-04T16:12:00Z"
* requester = Reference(PractitionerRole/prr-camhs-01)
* performer[0] = Reference(local-offer-online)
* reasonReference[0] = Reference(grouping-example-current)
* note[0].text = "Alex would like to try the online chat in the evenings."

Instance: referral-example
InstanceOf: ThriveSignposting
Usage: #example
Title: "Referral to the AMBIT-informed multi-agency team"
* id = "dbbf2118-797d-5ef9-999f-3d4b4b9c2262"
* insert Episode
* identifier[0].system = $thr-id-signposting
* identifier[0].value = "7b8c9d0e-1f2a-4b3c-9d4e-5f6a7b8c9d0e"
* status = #active
* intent = #order
* category[0] = ThriveConcepts#referral "Referral"
* code = LocalOfferExample#ambit-multi-agency "AMBIT-informed multi-agency team"
* subject = Reference(Patient/pat-example-01)
* authoredOn = "2025-03-04T16:15:00Z"
* requester = Reference(PractitionerRole/prr-camhs-01)
* performer[0] = Reference(local-offer-ambit)
* reasonReference[0] = Reference(grouping-example-current)

Instance: referral-task-example
InstanceOf: ThriveReferralTask
Usage: #example
Title: "Referral task, accepted by the multi-agency team"
* id = "235d91fc-bd37-56ce-835e-67db030662dc"
* identifier[0].system = $thr-id-referral-task
* identifier[0].value = "8c9d0e1f-2a3b-4c4d-8e5f-6a7b8c9d0e1f"
* status = #accepted
* intent = #order
* code = $task-code#fulfill "Fulfill the focal request"
* focus = Reference(referral-example)
* for = Reference(Patient/pat-example-01)
* authoredOn = "2025-03-04T16:15:00Z"
* lastModified = "2025-03-05T09:30:00Z"
* requester = Reference(PractitionerRole/prr-camhs-01)
* owner = Reference(local-offer-ambit)

// ---- provenance of the 4 March save ------------------------------------------------------------
// id = resource_id("provenance", "1042"): 1042 is the (synthetic) outbox row id of the save.
Instance: provenance-example
InstanceOf: ThriveProvenance
Usage: #example
Title: "Provenance of the save on 4 March"
* id = "756f7680-5fea-5229-8099-7aa70f91fffd"
* target[0] = Reference(grouping-example-current)
* target[+] = Reference(safety-plan-example)
* target[+] = Reference(sharing-consent-example)
* recorded = "2025-03-04T16:10:05Z"
* activity = $v3-DataOperation#CREATE "create"
* agent[author].type = $provenance-participant-type#author "Author"
* agent[author].who = Reference(PractitionerRole/prr-camhs-01)
* agent[author].onBehalfOf = Reference(Organization/org-camhs-01)
* agent[assembler].type = $provenance-participant-type#assembler "Assembler"
* agent[assembler].who = Reference(Device/dev-thrive-app-01)
* agent[informant][0].type = $provenance-participant-type#informant "Informant"
* agent[informant][0].who = Reference(Patient/pat-example-01)
* agent[informant][1].type = $provenance-participant-type#informant "Informant"
* agent[informant][1].who = Reference(RelatedPerson/rp-parent-01)
* entity[0].role = #source
* entity[0].what.identifier.system = $thr-id-grouping
* entity[0].what.identifier.value = "8e4f1c2a-6b3d-4a7e-8f90-1c2d3e4f5a6b"
* entity[0].what.display = "Local grouping record, version 1"

// Social care confirms its item of the safety plan (version 1), through its social worker.
Instance: agency-confirmation-example
InstanceOf: ThriveAgencyConfirmation
Usage: #example
Title: "Social care confirms its safety plan item"
* id = "c2d7f0a4-3b9e-4f61-8a25-6e1d0b7c9f38"
* target[0] = Reference(CarePlan/8107ce8c-f1bf-5c5c-8a7e-875f195aaf6b/_history/1)
* target[0].extension[0].url = "http://hl7.org/fhir/StructureDefinition/targetElement"
* target[0].extension[0].valueUri = "entry-3f2a9c71d04b8e65"
* recorded = "2025-03-05T09:30:00Z"
* activity = ThriveConcepts#agency-confirmed "Agency confirmed its safety plan item"
* agent[0].type = $provenance-participant-type#attester "Attester"
* agent[0].who = Reference(PractitionerRole/prr-socialcare-01)
* agent[0].onBehalfOf = Reference(Organization/org-socialcare-01)

// ---- episode, care team, local offer, flag, read audit -------------------------------------------
Instance: thrive-episode-example
InstanceOf: ThriveEpisode
Usage: #example
Title: "CAMHS episode"
* id = "7e2e600e-0a00-5843-a273-a7b66a2d2252"
* identifier[0].system = $thr-id-episode
* identifier[0].value = "9d0e1f2a-3b4c-4d5e-9f6a-7b8c9d0e1f2a"
* status = #active
* type[0].text = "Community CAMHS referral"
* patient = Reference(Patient/pat-example-01)
* managingOrganization = Reference(Organization/org-camhs-01)
* period.start = "2025-01-07"
* team[0] = Reference(care-team-example)

Instance: care-team-example
InstanceOf: ThriveCareTeam
Usage: #example
Title: "People and agencies involved"
* id = "ba1d1f04-9ed1-5e57-8dd4-03eab3dc354a"
* insert Episode
* identifier[0].system = $thr-id-care-team
* identifier[0].value = "0e1f2a3b-4c5d-4e6f-8a7b-8c9d0e1f2a3b"
* status = #active
* subject = Reference(Patient/pat-example-01)
* participant[0].role[0] = SdmParticipant#young-person "Young person"
* participant[0].member = Reference(Patient/pat-example-01)
* participant[+].role[0] = SdmParticipant#parent-carer "Parent or carer"
* participant[=].member = Reference(RelatedPerson/rp-parent-01)
* participant[+].role[0] = SdmParticipant#clinician "Clinician"
* participant[=].member = Reference(PractitionerRole/prr-camhs-01)
* participant[=].onBehalfOf = Reference(Organization/org-camhs-01)
* participant[+].role[0] = SdmParticipant#school "School or college"
* participant[=].member = Reference(PractitionerRole/prr-schoolnurse-01)
* participant[=].onBehalfOf = Reference(Organization/org-school-01)
* participant[+].role[0] = SdmParticipant#social-care "Children's social care"
* participant[=].member = Reference(PractitionerRole/prr-socialcare-01)
* participant[=].onBehalfOf = Reference(Organization/org-socialcare-01)

RuleSet: LocalOffer(code, display, name, org)
* identifier[0].system = $thr-id-local-offer
* identifier[0].value = "{code}"
* active = true
* providedBy = Reference(Organization/{org})
* type[0] = LocalOfferExample#{code} "{display}"
* name = "{name}"

Instance: local-offer-crisis-line
InstanceOf: ThriveLocalOffer
Usage: #example
Title: "Local offer: 24-hour crisis line"
* id = "hs-crisisline-01"
* insert LocalOffer(crisis-line, 24-hour crisis line, Example 24-hour young people's crisis line, org-voluntary-01)
* telecom[0].system = #phone
* telecom[0].value = "0808 157 0123"
* telecom[0].use = #work
* characteristic[0] = ThriveGrouping#getting-risk-support "Getting Risk Support"
* characteristic[+] = ThriveGrouping#getting-more-help "Getting More Help"

Instance: local-offer-online
InstanceOf: ThriveLocalOffer
Usage: #example
Title: "Local offer: online support"
* id = "hs-online-01"
* insert LocalOffer(online-support, Online support and counselling, Example online support for young people, org-voluntary-01)
* characteristic[0] = ThriveGrouping#getting-advice "Getting Advice and Signposting"
* characteristic[+] = ThriveGrouping#getting-help "Getting Help"

Instance: local-offer-ambit
InstanceOf: ThriveLocalOffer
Usage: #example
Title: "Local offer: AMBIT-informed multi-agency team"
* id = "hs-ambit-01"
* insert LocalOffer(ambit-multi-agency, AMBIT-informed multi-agency team, Example integrated adolescent team, org-camhs-01)
* characteristic[0] = ThriveGrouping#getting-risk-support "Getting Risk Support"

Instance: risk-flag-example
InstanceOf: ThriveRiskFlag
Usage: #example
Title: "Getting Risk Support: safety plan in place"
* id = "b4856a30-89b5-5cae-9c5f-c9243623cf03"
* identifier[0].system = $thr-id-flag
* identifier[0].value = "1f2a3b4c-5d6e-4f7a-9b8c-9d0e1f2a3b4c"
* status = #active
* category[0] = $flag-category#safety "Safety"
* code = ThriveConcepts#risk-support-alert "Getting Risk Support: safety plan in place"
* subject = Reference(Patient/pat-example-01)
* period.start = "2025-03-04T16:10:05Z"
* author = Reference(Device/dev-thrive-app-01)

Instance: read-audit-example
InstanceOf: ThriveReadAudit
Usage: #example
Title: "The school nurse reads the shared safety plan"
* id = "read-audit-example-01"
* type = $audit-event-type#rest "Restful Operation"
* subtype[0] = $restful-interaction#read "read"
* action = #R
* recorded = "2025-03-06T08:45:12Z"
* outcome = #0
* purposeOfEvent[0] = $v3-ActReason#TREAT "treatment"
* agent[0].type = http://terminology.hl7.org/CodeSystem/extra-security-role-type#humanuser "human user"
* agent[0].who = Reference(PractitionerRole/prr-schoolnurse-01)
* agent[0].requestor = true
* source.observer = Reference(Device/dev-thrive-app-01)
* entity[0].what = Reference(safety-plan-example)
* entity[+].what = Reference(Patient/pat-example-01)
