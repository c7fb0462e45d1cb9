"""SR test documents built at test time with pydicom, one per SR storage class the workstation reads.

Each builder returns a complete Part 10 dataset; together they use every value type, every relationship
type, by-reference items, NUM qualifiers, the header flags and verifying observers, and the root templates
TID 1500 (measurement report), TID 10011 (CT dose), TID 2010 (key objects), TID 5200 (adult echo) and
TID 5100 (vascular ultrasound).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

BASIC_TEXT = "1.2.840.10008.5.1.4.1.1.88.11"
ENHANCED = "1.2.840.10008.5.1.4.1.1.88.22"
COMPREHENSIVE = "1.2.840.10008.5.1.4.1.1.88.33"
COMPREHENSIVE_3D = "1.2.840.10008.5.1.4.1.1.88.34"
PROCEDURE_LOG = "1.2.840.10008.5.1.4.1.1.88.40"
MAMMO_CAD = "1.2.840.10008.5.1.4.1.1.88.50"
KEY_OBJECT = "1.2.840.10008.5.1.4.1.1.88.59"
CHEST_CAD = "1.2.840.10008.5.1.4.1.1.88.65"
DOSE = "1.2.840.10008.5.1.4.1.1.88.67"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
US_MF_IMAGE = "1.2.840.10008.5.1.4.1.1.3.1"
MG_IMAGE = "1.2.840.10008.5.1.4.1.1.1.2"
ECG_WAVEFORM = "1.2.840.10008.5.1.4.1.1.9.1.1"
GSPS = "1.2.840.10008.5.1.4.1.1.11.1"

STUDY_UID = "1.2.826.0.1.3680043.8.498.1"
CT_UID = "1.2.826.0.1.3680043.8.498.1.1.1"
MR_UID = "1.2.826.0.1.3680043.8.498.1.1.2"


def code(value: str, scheme: str, meaning: str) -> Dataset:
    ds = Dataset()
    ds.CodeValue = value
    ds.CodingSchemeDesignator = scheme
    ds.CodeMeaning = meaning
    return ds


def item(
    relationship: str | None,
    value_type: str,
    concept: Dataset | None = None,
    children: Sequence[Dataset] = (),
    **attributes: object,
) -> Dataset:
    ds = Dataset()
    if relationship:
        ds.RelationshipType = relationship
    ds.ValueType = value_type
    if concept is not None:
        ds.ConceptNameCodeSequence = [concept]
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    if children:
        ds.ContentSequence = DicomSequence(list(children))
    return ds


def container(
    relationship: str | None,
    concept: Dataset | None,
    children: Sequence[Dataset],
    continuity: str = "SEPARATE",
    template: str | None = None,
) -> Dataset:
    ds = item(relationship, "CONTAINER", concept, children, ContinuityOfContent=continuity)
    if template:
        tpl = Dataset()
        tpl.MappingResource = "DCMR"
        tpl.TemplateIdentifier = template
        ds.ContentTemplateSequence = [tpl]
    return ds


def text(rel: str, concept: Dataset, value: str, children: Sequence[Dataset] = ()) -> Dataset:
    return item(rel, "TEXT", concept, children, TextValue=value)


def coded(rel: str, concept: Dataset, value: Dataset, children: Sequence[Dataset] = ()) -> Dataset:
    return item(rel, "CODE", concept, children, ConceptCodeSequence=[value])


def num(
    rel: str,
    concept: Dataset,
    value: str | None,
    unit: Dataset | None,
    children: Sequence[Dataset] = (),
    qualifier: Dataset | None = None,
) -> Dataset:
    ds = item(rel, "NUM", concept, children)
    measured = Dataset()
    if value is not None:
        measured.NumericValue = value
        measured.MeasurementUnitsCodeSequence = [unit]
        ds.MeasuredValueSequence = [measured]
    else:
        ds.MeasuredValueSequence = []
    if qualifier is not None:
        ds.NumericValueQualifierCodeSequence = [qualifier]
    return ds


def sop_ref(sop_class: str, sop_instance: str, frames: Sequence[int] = (), **extra: object) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID = sop_class
    ref.ReferencedSOPInstanceUID = sop_instance
    if frames:
        ref.ReferencedFrameNumber = list(frames) if len(frames) > 1 else frames[0]
    for keyword, value in extra.items():
        setattr(ref, keyword, value)
    return ref


def image(rel: str, concept: Dataset | None, sop_class: str, sop_instance: str, frames: Sequence[int] = ()) -> Dataset:
    return item(rel, "IMAGE", concept, (), ReferencedSOPSequence=[sop_ref(sop_class, sop_instance, frames)])


def by_reference(rel: str, position: Sequence[int]) -> Dataset:
    ds = Dataset()
    ds.RelationshipType = rel
    ds.ReferencedContentItemIdentifier = list(position)
    return ds


def ucum(symbol: str, meaning: str) -> Dataset:
    return code(symbol, "UCUM", meaning)


def document(
    sop_class: str,
    root: Dataset,
    *,
    modality: str = "SR",
    series_description: str = "",
    patient_name: str = "Doe^Jane",
    charset: str | None = None,
    completion: str = "COMPLETE",
    verified: bool = True,
    evidence: Sequence[tuple[str, str]] = ((CT_IMAGE, CT_UID),),
) -> Dataset:
    ds = Dataset()
    if charset:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.PatientName = patient_name
    ds.PatientID = "LB-0042"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.StudyDate = "20240301"
    ds.StudyTime = "101500"
    ds.StudyID = "42"
    ds.AccessionNumber = "ACC42"
    ds.ReferringPhysicianName = "Welby^Marcus"
    ds.StudyDescription = "Lightbox SR sample"
    ds.SeriesNumber = 900
    ds.SeriesDescription = series_description or root.ConceptNameCodeSequence[0].CodeMeaning
    ds.InstanceNumber = 1
    ds.Manufacturer = "Lightbox tests"
    ds.ContentDate = "20240301"
    ds.ContentTime = "103000"
    ds.InstanceCreationDate = "20240301"
    ds.InstanceCreationTime = "103000"
    if sop_class != KEY_OBJECT:
        ds.CompletionFlag = completion
        if completion == "PARTIAL":
            ds.CompletionFlagDescription = "awaiting second read"
        ds.VerificationFlag = "VERIFIED" if verified else "UNVERIFIED"
        if verified:
            observer = Dataset()
            observer.VerifyingObserverName = "Radiologist^Rita"
            observer.VerifyingOrganization = "Lightbox General Hospital"
            observer.VerificationDateTime = "20240301110000"
            observer.VerifyingObserverIdentificationCodeSequence = [code("RR01", "99LBX", "Rita Radiologist")]
            ds.VerifyingObserverSequence = [observer]
        author = Dataset()
        author.ObserverType = "PSN"
        author.PersonName = "Author^Alan"
        author.InstitutionName = "Lightbox General Hospital"
        ds.AuthorObserverSequence = [author]
        ds.PerformedProcedureCodeSequence = []
    study = Dataset()
    study.StudyInstanceUID = STUDY_UID
    series = Dataset()
    series.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.1.1"
    series.ReferencedSOPSequence = [sop_ref(c, i) for c, i in evidence]
    study.ReferencedSeriesSequence = [series]
    ds.CurrentRequestedProcedureEvidenceSequence = [study]
    ds.ReferencedPerformedProcedureStepSequence = []
    if sop_class == DOSE:
        ds.ManufacturerModelName = "Lightbox CT"
        ds.DeviceSerialNumber = "0001"
        ds.SoftwareVersions = "1"
    if sop_class == PROCEDURE_LOG:
        ds.SynchronizationFrameOfReferenceUID = "1.2.840.10008.15.1.1"
        ds.SynchronizationTrigger = "NO TRIGGER"
        ds.AcquisitionTimeSynchronized = "N"
    for keyword in ("RelationshipType",):
        if keyword in root:
            del root[keyword]
    for element in root:
        ds.add(element)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


DCM = "DCM"
LANGUAGE = coded(
    "HAS CONCEPT MOD", code("121049", DCM, "Language of Content Item and Descendants"), code("en", "RFC5646", "English")
)


def basic_text() -> Dataset:
    root = container(
        None,
        code("11528-7", "LN", "Radiology Report"),
        [
            coded(
                "HAS CONCEPT MOD",
                code("121049", DCM, "Language of Content Item and Descendants"),
                code("de", "RFC5646", "German"),
            ),
            item(
                "HAS OBS CONTEXT", "PNAME", code("121008", DCM, "Person Observer Name"), PersonName="Müller^Jürgen^^Dr."
            ),
            item(
                "HAS OBS CONTEXT",
                "UIDREF",
                code("121012", DCM, "Device Observer UID"),
                UID="1.2.826.0.1.3680043.8.498.77",
            ),
            container(
                "CONTAINS",
                code("121064", DCM, "Current Procedure Descriptions"),
                [text("CONTAINS", code("121065", DCM, "Procedure Description"), "CT chest without contrast")],
            ),
            container(
                "CONTAINS",
                code("121070", DCM, "Findings"),
                [
                    text(
                        "CONTAINS",
                        code("121071", DCM, "Finding"),
                        "Spiculated nodule in the right upper lobe.\r\nNo effusion.",
                        [image("INFERRED FROM", None, CT_IMAGE, CT_UID)],
                    ),
                    coded("CONTAINS", code("121071", DCM, "Finding"), code("39607008", "SCT", "Lung structure")),
                    item("CONTAINS", "DATE", code("111060", DCM, "Study Date"), Date="20240301"),
                    item("CONTAINS", "TIME", code("111061", DCM, "Study Time"), Time="101500"),
                    item("CONTAINS", "DATETIME", code("111526", DCM, "DateTime Started"), DateTime="20240301101500"),
                    item(
                        "CONTAINS",
                        "COMPOSITE",
                        code("121112", DCM, "Source of Measurement"),
                        ReferencedSOPSequence=[sop_ref(GSPS, "1.2.826.0.1.3680043.8.498.1.9.1")],
                    ),
                    item(
                        "CONTAINS",
                        "WAVEFORM",
                        code("121112", DCM, "Source of Measurement"),
                        ReferencedSOPSequence=[
                            sop_ref(
                                ECG_WAVEFORM, "1.2.826.0.1.3680043.8.498.1.9.2", ReferencedWaveformChannels=[1, 1, 1, 2]
                            )
                        ],
                    ),
                ],
            ),
            container(
                "CONTAINS",
                code("121076", DCM, "Conclusions"),
                [text("CONTAINS", code("121077", DCM, "Conclusion"), "Suspicious for malignancy; biopsy advised.")],
            ),
        ],
        template="2000",
    )
    return document(BASIC_TEXT, root, charset="ISO_IR 192", patient_name="Ångström^Åsa")


def enhanced() -> Dataset:
    scoord = item(
        "HAS PROPERTIES",
        "SCOORD",
        code("111030", DCM, "Image Region"),
        [image("SELECTED FROM", None, CT_IMAGE, CT_UID, frames=[1])],
        GraphicType="POLYLINE",
        GraphicData=[10.5, 20.25, 30.0, 40.75, 50.0, 20.25],
    )
    tcoord = item(
        "HAS PROPERTIES",
        "TCOORD",
        code("122001", DCM, "Time Range"),
        [
            item(
                "SELECTED FROM",
                "WAVEFORM",
                None,
                ReferencedSOPSequence=[sop_ref(ECG_WAVEFORM, "1.2.826.0.1.3680043.8.498.1.9.2")],
            )
        ],
        TemporalRangeType="SEGMENT",
        ReferencedSamplePositions=[100, 250],
    )
    root = container(
        None,
        code("18748-4", "LN", "Diagnostic Imaging Report"),
        [
            container(
                "CONTAINS",
                code("121070", DCM, "Findings"),
                [
                    num(
                        "CONTAINS",
                        code("410668003", "SCT", "Length"),
                        "42.5",
                        ucum("mm", "millimeter"),
                        [
                            scoord,
                            coded(
                                "HAS CONCEPT MOD",
                                code("370129005", "SCT", "Measurement Method"),
                                code("RID1234", "RADLEX", "Caliper"),
                            ),
                        ],
                    ),
                    num(
                        "CONTAINS",
                        code("118565006", "SCT", "Volume"),
                        None,
                        None,
                        qualifier=code("114006", DCM, "Measurement failure"),
                    ),
                    text("CONTAINS", code("121071", DCM, "Finding"), "Rhythm strip reviewed.", [tcoord]),
                ],
                continuity="CONTINUOUS",
            )
        ],
    )
    return document(ENHANCED, root, completion="PARTIAL", verified=False)


def measurement_report() -> Dataset:
    """TID 1500 Imaging Measurement Report with a planar ROI measurement group (TID 1410)."""
    roi = item(
        "CONTAINS",
        "SCOORD",
        code("111030", DCM, "Image Region"),
        [image("SELECTED FROM", None, CT_IMAGE, CT_UID, frames=[1])],
        GraphicType="CIRCLE",
        GraphicData=[256.0, 256.0, 266.0, 256.0],
        PixelOriginInterpretation="VOLUME",
    )
    group = container(
        "CONTAINS",
        code("125007", DCM, "Measurement Group"),
        [
            text("HAS OBS CONTEXT", code("112039", DCM, "Tracking Identifier"), "Lesion 1"),
            item(
                "HAS OBS CONTEXT",
                "UIDREF",
                code("112040", DCM, "Tracking Unique Identifier"),
                UID="1.2.826.0.1.3680043.8.498.55",
            ),
            coded("CONTAINS", code("121071", DCM, "Finding"), code("108369006", "SCT", "Neoplasm")),
            roi,
            num(
                "CONTAINS",
                code("103339001", "SCT", "Long Axis"),
                "21.3",
                ucum("mm", "millimeter"),
                [
                    coded(
                        "HAS CONCEPT MOD",
                        code("G-C036", "SRT", "Measurement Method"),
                        code("RID10073", "RADLEX", "Manual"),
                    ),
                    by_reference("INFERRED FROM", [1, 4, 1, 4]),
                ],
            ),
            num("CONTAINS", code("103340004", "SCT", "Short Axis"), "14.8", ucum("mm", "millimeter")),
            num(
                "CONTAINS",
                code("112031", DCM, "Attenuation Coefficient"),
                "-12",
                ucum("[hnsf'U]", "Hounsfield unit"),
                [coded("HAS CONCEPT MOD", code("121401", DCM, "Derivation"), code("373098007", "SCT", "Mean"))],
            ),
            num("CONTAINS", code("C0205435", "UMLS", "Ratio"), "0.75", ucum("1", "no units")),
        ],
        template="1411",
    )
    root = container(
        None,
        code("126000", DCM, "Imaging Measurement Report"),
        [
            LANGUAGE,
            item("HAS OBS CONTEXT", "PNAME", code("121008", DCM, "Person Observer Name"), PersonName="Reader^Rhea"),
            container(
                "CONTAINS",
                code("111028", DCM, "Image Library"),
                [
                    container(
                        "CONTAINS",
                        code("126200", DCM, "Image Library Group"),
                        [image("CONTAINS", None, CT_IMAGE, CT_UID)],
                    )
                ],
            ),
            container("CONTAINS", code("126010", DCM, "Imaging Measurements"), [group]),
        ],
        template="1500",
    )
    return document(COMPREHENSIVE, root)


def comprehensive_3d() -> Dataset:
    root = container(
        None,
        code("126000", DCM, "Imaging Measurement Report"),
        [
            LANGUAGE,
            container(
                "CONTAINS",
                code("126010", DCM, "Imaging Measurements"),
                [
                    num(
                        "CONTAINS",
                        code("410668003", "SCT", "Length"),
                        "31",
                        ucum("mm", "millimeter"),
                        [
                            item(
                                "INFERRED FROM",
                                "SCOORD3D",
                                code("111030", DCM, "Image Region"),
                                GraphicType="POLYLINE",
                                GraphicData=[-10.5, 20.0, 30.25, 12.5, 20.0, 30.25],
                                ReferencedFrameOfReferenceUID="1.2.826.0.1.3680043.8.498.1.5",
                            )
                        ],
                    ),
                    item(
                        "CONTAINS",
                        "SCOORD3D",
                        code("111010", DCM, "Center"),
                        GraphicType="POINT",
                        GraphicData=[1.5, -2.5, 3.0],
                        ReferencedFrameOfReferenceUID="1.2.826.0.1.3680043.8.498.1.5",
                    ),
                ],
            ),
        ],
        template="1500",
    )
    return document(COMPREHENSIVE_3D, root)


def key_objects() -> Dataset:
    root = container(
        None,
        code("113000", DCM, "Of Interest"),
        [
            text("CONTAINS", code("113012", DCM, "Key Object Description"), "Nodule, best seen on these slices"),
            image("CONTAINS", None, CT_IMAGE, CT_UID),
            image("CONTAINS", None, MR_IMAGE, MR_UID),
        ],
        template="2010",
    )
    return document(
        KEY_OBJECT,
        root,
        modality="KO",
        series_description="Key images",
        evidence=((CT_IMAGE, CT_UID), (MR_IMAGE, MR_UID)),
    )


def dose_report() -> Dataset:
    """TID 10011 CT Radiation Dose."""
    mgy = ucum("mGy", "mGy")
    root = container(
        None,
        code("113701", DCM, "X-Ray Radiation Dose Report"),
        [
            coded(
                "HAS CONCEPT MOD",
                code("121058", DCM, "Procedure reported"),
                code("77477000", "SCT", "Computed Tomography X-Ray"),
            ),
            coded("HAS OBS CONTEXT", code("121005", DCM, "Observer Type"), code("121007", DCM, "Device")),
            item(
                "HAS OBS CONTEXT",
                "UIDREF",
                code("121012", DCM, "Device Observer UID"),
                UID="1.2.826.0.1.3680043.8.498.66",
            ),
            item(
                "HAS OBS CONTEXT",
                "DATETIME",
                code("113809", DCM, "Start of X-Ray Irradiation"),
                DateTime="20240301101600",
            ),
            item(
                "HAS OBS CONTEXT",
                "DATETIME",
                code("113810", DCM, "End of X-Ray Irradiation"),
                DateTime="20240301102000",
            ),
            container(
                "CONTAINS",
                code("113811", DCM, "CT Accumulated Dose Data"),
                [
                    num(
                        "CONTAINS",
                        code("113812", DCM, "Total Number of Irradiation Events"),
                        "2",
                        ucum("{events}", "events"),
                    ),
                    num(
                        "CONTAINS",
                        code("113813", DCM, "CT Dose Length Product Total"),
                        "512.34",
                        ucum("mGy.cm", "mGy.cm"),
                    ),
                ],
            ),
            container(
                "CONTAINS",
                code("113819", DCM, "CT Acquisition"),
                [
                    text("CONTAINS", code("125203", DCM, "Acquisition Protocol"), "Chest routine"),
                    coded("CONTAINS", code("123014", DCM, "Target Region"), code("51185008", "SCT", "Chest")),
                    coded(
                        "CONTAINS",
                        code("113820", DCM, "CT Acquisition Type"),
                        code("116152004", "SCT", "Spiral Acquisition"),
                    ),
                    item(
                        "CONTAINS",
                        "UIDREF",
                        code("113769", DCM, "Irradiation Event UID"),
                        UID="1.2.826.0.1.3680043.8.498.67",
                    ),
                    container(
                        "CONTAINS",
                        code("113822", DCM, "CT Acquisition Parameters"),
                        [
                            num("CONTAINS", code("113824", DCM, "Exposure Time"), "6.2", ucum("s", "s")),
                            num(
                                "CONTAINS",
                                code("113826", DCM, "Nominal Single Collimation Width"),
                                "0.625",
                                ucum("mm", "mm"),
                            ),
                        ],
                    ),
                    container(
                        "CONTAINS",
                        code("113829", DCM, "CT Dose"),
                        [
                            num("CONTAINS", code("113830", DCM, "Mean CTDIvol"), "8.91", mgy),
                            num("CONTAINS", code("113838", DCM, "DLP"), "402.1", ucum("mGy.cm", "mGy.cm")),
                        ],
                    ),
                ],
            ),
        ],
        template="10011",
    )
    return document(DOSE, root, modality="SR", series_description="Dose Report")


def echo_report() -> Dataset:
    """TID 5200 Adult Echocardiography measurements, as Philips Xcelera sends them (Comprehensive SR)."""
    mode = coded("HAS CONCEPT MOD", code("G-0373", "SRT", "Image Mode"), code("G-03A2", "SRT", "2D mode"))
    root = container(
        None,
        code("125200", DCM, "Adult Echocardiography Procedure Report"),
        [
            container(
                "CONTAINS",
                code("121064", DCM, "Current Procedure Descriptions"),
                [text("CONTAINS", code("121065", DCM, "Procedure Description"), "TTE complete")],
            ),
            container(
                "CONTAINS",
                code("121070", DCM, "Findings"),
                [
                    coded(
                        "HAS CONCEPT MOD",
                        code("G-C0E3", "SRT", "Finding Site"),
                        code("T-32600", "SRT", "Left Ventricle"),
                    ),
                    container(
                        "CONTAINS",
                        code("125007", DCM, "Measurement Group"),
                        [
                            num(
                                "CONTAINS",
                                code("29436-3", "LN", "Left Ventricle Internal End Diastolic Dimension"),
                                "48",
                                ucum("mm", "mm"),
                                [mode],
                            ),
                            num(
                                "CONTAINS",
                                code("29438-9", "LN", "Left Ventricle Internal Systolic Dimension"),
                                "31",
                                ucum("mm", "mm"),
                                [mode],
                            ),
                            num(
                                "CONTAINS",
                                code("18043-0", "LN", "Left Ventricular Ejection Fraction"),
                                "62",
                                ucum("%", "%"),
                            ),
                        ],
                    ),
                ],
            ),
        ],
        template="5200",
    )
    return document(COMPREHENSIVE, root, modality="SR", series_description="Echo measurements")


def vascular_report() -> Dataset:
    """TID 5100 Vascular Ultrasound Report."""
    root = container(
        None,
        code("125100", DCM, "Vascular Ultrasound Procedure Report"),
        [
            container(
                "CONTAINS",
                code("121070", DCM, "Findings"),
                [
                    coded(
                        "HAS CONCEPT MOD",
                        code("G-C0E3", "SRT", "Finding Site"),
                        code("T-45010", "SRT", "Carotid Artery"),
                    ),
                    coded("HAS CONCEPT MOD", code("G-C171", "SRT", "Laterality"), code("G-A100", "SRT", "Right")),
                    container(
                        "CONTAINS",
                        code("125007", DCM, "Measurement Group"),
                        [
                            coded(
                                "HAS CONCEPT MOD",
                                code("G-C0E3", "SRT", "Finding Site"),
                                code("T-45100", "SRT", "Internal Carotid Artery"),
                            ),
                            num(
                                "CONTAINS",
                                code("11726-7", "LN", "Peak Systolic Velocity"),
                                "85.2",
                                ucum("cm/s", "cm/s"),
                            ),
                            num(
                                "CONTAINS",
                                code("11653-3", "LN", "End Diastolic Velocity"),
                                "22.1",
                                ucum("cm/s", "cm/s"),
                            ),
                            num("CONTAINS", code("12023-8", "LN", "Resistivity Index"), "0.74", ucum("1", "no units")),
                        ],
                    ),
                ],
            )
        ],
        template="5100",
    )
    return document(COMPREHENSIVE, root, series_description="Carotid measurements")


def mammography_cad() -> Dataset:
    root = container(
        None,
        code("111036", DCM, "Mammography CAD Report"),
        [
            container(
                "CONTAINS",
                code("111028", DCM, "Image Library"),
                [image("CONTAINS", None, MG_IMAGE, "1.2.826.0.1.3680043.8.498.1.3.1")],
            ),
            coded(
                "CONTAINS",
                code("111064", DCM, "Summary of Detections"),
                code("111222", DCM, "Succeeded"),
                [
                    coded(
                        "INFERRED FROM",
                        code("111059", DCM, "Single Image Finding"),
                        code("F-01796", "SRT", "Mammography breast density"),
                        [
                            num("HAS PROPERTIES", code("111047", DCM, "Probability of cancer"), "17", ucum("%", "%")),
                            item(
                                "HAS PROPERTIES",
                                "SCOORD",
                                code("111010", DCM, "Center"),
                                [image("SELECTED FROM", None, MG_IMAGE, "1.2.826.0.1.3680043.8.498.1.3.1")],
                                GraphicType="POINT",
                                GraphicData=[512.0, 768.0],
                            ),
                        ],
                    )
                ],
            ),
            coded("CONTAINS", code("111065", DCM, "Summary of Analyses"), code("111225", DCM, "Not Attempted")),
        ],
        template="4000",
    )
    return document(MAMMO_CAD, root, modality="SR")


def chest_cad() -> Dataset:
    root = container(
        None,
        code("112000", DCM, "Chest CAD Report"),
        [
            container("CONTAINS", code("111028", DCM, "Image Library"), [image("CONTAINS", None, CT_IMAGE, CT_UID)]),
            coded(
                "CONTAINS",
                code("111017", DCM, "CAD Processing and Findings Summary"),
                code("111242", DCM, "All algorithms succeeded; with findings"),
                [
                    coded(
                        "INFERRED FROM",
                        code("111059", DCM, "Single Image Finding"),
                        code("M-03010", "SRT", "Nodule"),
                        [num("HAS PROPERTIES", code("111047", DCM, "Probability of cancer"), "64", ucum("%", "%"))],
                    )
                ],
            ),
        ],
        template="4100",
    )
    return document(CHEST_CAD, root)


def procedure_log() -> Dataset:
    log_entry = dict(ObservationDateTime="20240301101700")
    root = container(
        None,
        code("121145", DCM, "Procedure Log"),
        [
            LANGUAGE,
            item("HAS OBS CONTEXT", "PNAME", code("121008", DCM, "Person Observer Name"), PersonName="Tech^Tom"),
            item(
                "CONTAINS",
                "TEXT",
                code("121106", DCM, "Comment"),
                TextValue="Patient positioned supine",
                **log_entry,
            ),
            num("CONTAINS", code("8867-4", "LN", "Heart rate"), "72", ucum("/min", "per minute")),
            item(
                "CONTAINS",
                "IMAGE",
                code("121112", DCM, "Source of Measurement"),
                ReferencedSOPSequence=[sop_ref(US_MF_IMAGE, "1.2.826.0.1.3680043.8.498.1.4.1", frames=[3, 7])],
            ),
            item(
                "CONTAINS",
                "WAVEFORM",
                code("121112", DCM, "Source of Measurement"),
                ReferencedSOPSequence=[sop_ref(ECG_WAVEFORM, "1.2.826.0.1.3680043.8.498.1.9.2")],
            ),
        ],
        template="3001",
    )
    return document(PROCEDURE_LOG, root, modality="SR")


ALL_SAMPLES: dict[str, Callable[[], Dataset]] = {
    "basic_text": basic_text,
    "enhanced": enhanced,
    "measurement_report": measurement_report,
    "comprehensive_3d": comprehensive_3d,
    "key_objects": key_objects,
    "dose_report": dose_report,
    "echo_report": echo_report,
    "vascular_report": vascular_report,
    "mammography_cad": mammography_cad,
    "chest_cad": chest_cad,
    "procedure_log": procedure_log,
}


def write_all(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, build in ALL_SAMPLES.items():
        path = folder / f"{name}.dcm"
        build().save_as(path, enforce_file_format=True)
        paths[name] = path
    return paths
