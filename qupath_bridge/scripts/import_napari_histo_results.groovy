/**
 * napari-histo: import a result file (GeoJSON from qupath_bridge.write_geojson, `histo qupath
 * convert`, napari's "Save as QuPath GeoJSON" or a napari-histo prediction run) into the open image.
 *
 * QuPath 0.4 – 0.7.  Accepts .geojson, .json, .geojson.zip (one entry) — the objects keep their
 * ids, types (annotation, detection, tile, cell), classes and colours, measurements and lock state.
 * Coordinates must be level-0 pixels of this image, which is what napari-histo writes.
 *
 * GUI: run it and pick the file.  Headless:
 *   qupath script import_napari_histo_results.groovy --image slide.svs -a /path/to/results.geojson
 *   qupath script import_napari_histo_results.groovy --project project.qpproj -a results/{name}.geojson
 *   ({name} is replaced by the image name without extension, for "Run for project").
 */
import qupath.lib.common.GeneralTools
import qupath.lib.io.PathIO

// options ---------------------------------------------------------------------------------
def removeExistingDetections = false  // true → replace earlier model results (annotations stay)
def insertIntoHierarchy = true        // true → detections become children of the annotation around them
def lockAnnotations = false           // true → imported annotations cannot be moved by accident
// ------------------------------------------------------------------------------------------

def imageData = getCurrentImageData()
if (imageData == null) {
    throw new IllegalStateException("Open an image first (no image data found)")
}
def imageName = getProjectEntry()?.getImageName() ?: imageData.getServer().getMetadata().getName()
def stem = GeneralTools.stripExtension(imageName)

def scriptArgs = binding.hasVariable('args') ? args : [] as String[]
File file
if (scriptArgs.size() > 0) {
    file = new File(scriptArgs[0].replace('{name}', stem))
} else {
    file = promptForResults("napari-histo results for ${imageName}")
}
if (file == null)
    return
if (!file.isFile()) {
    throw new FileNotFoundException("napari-histo results not found: ${file}")
}

def objects = PathIO.readObjects(file)
if (lockAnnotations)
    objects.findAll { it.isAnnotation() }.each { it.setLocked(true) }

def hierarchy = imageData.getHierarchy()
if (removeExistingDetections)
    hierarchy.removeObjects(hierarchy.getDetectionObjects(), true)
if (insertIntoHierarchy) {
    hierarchy.insertPathObjects(objects)
} else {
    hierarchy.addObjects(objects)
}
fireHierarchyUpdate()
def counts = objects.countBy { it.getClass().getSimpleName() }
println "napari-histo: imported ${objects.size()} objects from ${file.getName()} into ${imageName}: ${counts}"


/** A file chooser on QuPath 0.5+ (qupath.fx FileChoosers) and on 0.4 (Dialogs). */
File promptForResults(String title) {
    try {
        def choosers = Class.forName('qupath.fx.dialogs.FileChoosers')
        def filter = choosers.createExtensionFilter('GeoJSON', '.geojson', '.json', '.zip')
        return choosers.promptForFile(title, filter)
    } catch (ClassNotFoundException ignored) {
        def dialogs = Class.forName('qupath.lib.gui.dialogs.Dialogs')
        return dialogs.promptForFile(title, null, 'GeoJSON', '.geojson', '.json', '.zip')
    }
}
