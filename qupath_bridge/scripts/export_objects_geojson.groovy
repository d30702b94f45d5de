/**
 * napari-histo: export every object of the open image as a GeoJSON FeatureCollection.
 *
 * QuPath 0.4 – 0.7 (Automate › Script editor › Run, or "Run for project" for every image).
 * Writes <project>/napari-histo/<image name>.geojson (next to the image when there is no project),
 * in level-0 pixel coordinates, with ids, classes + colours, measurements and metadata.
 * Read it in Python with qupath_bridge.read_geojson(path) or open it in napari (napari-histo plugin).
 *
 * Headless:  qupath script export_objects_geojson.groovy --project project.qpproj
 *            qupath script export_objects_geojson.groovy --image slide.svs -a /path/to/out.geojson
 */
import qupath.lib.common.GeneralTools

// options ---------------------------------------------------------------------------------
def includeMeasurements = true      // false → smaller files (QuPath's EXCLUDE_MEASUREMENTS)
def compress = false                // true → .geojson.zip, as QuPath writes zipped exports
// ------------------------------------------------------------------------------------------

def imageData = getCurrentImageData()
if (imageData == null) {
    throw new IllegalStateException("Open an image first (no image data found)")
}
def server = imageData.getServer()
def imageName = getProjectEntry()?.getImageName() ?: server.getMetadata().getName()
def stem = GeneralTools.stripInvalidFilenameChars(GeneralTools.stripExtension(imageName))

def outputPath
def scriptArgs = binding.hasVariable('args') ? args : [] as String[]
if (scriptArgs.size() > 0) {
    outputPath = scriptArgs[0]
} else {
    def baseDir = getProject() != null ? buildFilePath(PROJECT_BASE_DIR, 'napari-histo') :
            new File(server.getURIs()[0]).getParent()
    mkdirs(baseDir)
    outputPath = buildFilePath(baseDir, stem + (compress ? '.geojson.zip' : '.geojson'))
}

def objects = getAllObjects(false)   // false: everything except the root object
def options = ['FEATURE_COLLECTION']
if (!includeMeasurements)
    options << 'EXCLUDE_MEASUREMENTS'
exportObjectsToGeoJson(objects, outputPath, *options)
println "napari-histo: exported ${objects.size()} objects of ${imageName} to ${outputPath}"
