// Synthetic resources the app does NOT create (it finds them in the EHR or the store): readable ids
// stand for whatever ids the store holds (docs/design/fhir-model.md section 3). Invented people; the NHS number
// is in the 999 test range with a valid modulus-11 check digit.
Instance: pat-example-01
InstanceOf: Patient
Usage: #example
Title: "Young person (synthetic)"
* identifier[0].system = $nhs-number
* identifier[0].value = "9997654323"
* identifier[0].extension[0].url = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
* identifier[0].extension[0].valueCodeableConcept = https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland#01 "Number present and verified"
* name[0].given[0] = "Alex"
* name[0].family = "Example"
* gender = #other
* birthDate = "2010-05-17"

Instance: rp-parent-01
InstanceOf: RelatedPerson
Usage: #example
Title: "Parent (synthetic)"
* patient = Reference(Patient/pat-example-01)
* relationship = http://terminology.hl7.org/CodeSystem/v3-RoleCode#MTH "mother"
* name[0].given[0] = "Sam"
* name[0].family = "Example"

Instance: pr-camhs-01
InstanceOf: Practitioner
Usage: #example
Title: "CAMHS clinician (synthetic)"
* name[0].given[0] = "Jo"
* name[0].family = "Clinician"

Instance: prr-camhs-01
InstanceOf: PractitionerRole
Usage: #example
Title: "CAMHS clinician role (synthetic)"
* practitioner = Reference(Practitioner/pr-camhs-01)
* organization = Reference(Organization/org-camhs-01)

Instance: prr-schoolnurse-01
InstanceOf: PractitionerRole
Usage: #example
Title: "School nurse role (synthetic)"
* organization = Reference(Organization/org-school-01)

Instance: prr-socialcare-01
InstanceOf: PractitionerRole
Usage: #example
Title: "Social worker role (synthetic)"
* organization = Reference(Organization/org-socialcare-01)

Instance: org-camhs-01
InstanceOf: Organization
Usage: #example
Title: "CAMHS provider (synthetic)"
* identifier[0].system = $ods-org
* identifier[0].value = "RXX"
* name = "Example Community CAMHS"

Instance: org-school-01
InstanceOf: Organization
Usage: #example
Title: "School (synthetic)"
* name = "Example Park Academy"

Instance: org-socialcare-01
InstanceOf: Organization
Usage: #example
Title: "Children's social care (synthetic)"
* name = "Example Borough Children's Services"

Instance: org-voluntary-01
InstanceOf: Organization
Usage: #example
Title: "Voluntary-sector provider (synthetic)"
* name = "Example Young Minds Trust"

Instance: dev-thrive-app-01
InstanceOf: Device
Usage: #example
Title: "THRIVE-FHIR app deployment"
* deviceName[0].name = "THRIVE-FHIR"
* deviceName[0].type = #manufacturer-name
* version[0].value = "0.1.0"

Instance: enc-example-01
InstanceOf: Encounter
Usage: #example
Title: "First session (synthetic)"
* status = #finished
* class = http://terminology.hl7.org/CodeSystem/v3-ActCode#AMB
* subject = Reference(Patient/pat-example-01)
* period.start = "2025-01-14T15:00:00Z"

Instance: enc-example-07
InstanceOf: Encounter
Usage: #example
Title: "Seventh session (synthetic)"
* status = #finished
* class = http://terminology.hl7.org/CodeSystem/v3-ActCode#AMB
* subject = Reference(Patient/pat-example-01)
* period.start = "2025-03-04T15:00:00Z"
